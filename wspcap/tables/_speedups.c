/*
 * Compiled mirrors of wspcap.tables.arrays.py_join_bytes and py_join_strs
 * (see those functions for what they do): a column's bytes, or its strings
 * encoded as UTF-8, joined into one buffer, with the offsets of an Arrow
 * binary or string array, in two passes over the objects; and of
 * wspcap.tables.arrays.py_codes_of: a dictionary column's codes.
 *
 * join_bytes is what writing the frames and messages tables spends most on:
 * for chat's 250,000 messages, len() and b"".join() over each column took
 * 80 ms of analyze -o. join_strs makes the app table's text columns
 * (channel, id, fields): each string encoded, a null mask made and the
 * encodings joined took 45-100 ms a column of 250,000 rows in Python.
 * codes_of makes the codes of the app table's kind and direction (a dict
 * lookup a row through map() took 8 ms a column of 250,000 rows).
 *
 * Built optionally (pyproject.toml: ext-modules, optional): where no C
 * compiler is at hand, the pure-Python function is used and nothing else
 * changes. tests/unit/test_speedups.py compares the two on generated input.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* The offsets of n items: n + 1 integers, int64 when wide, else int32,
 * the first 0 (the others are put_offset's); *limit: the most bytes they
 * can count. */
static PyObject *
new_offsets(Py_ssize_t n, int wide, long long *limit)
{
    Py_ssize_t width = wide ? 8 : 4;
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (n + 1) * width);

    if (offsets != NULL)
        memset(PyBytes_AS_STRING(offsets), 0, (size_t)width);
    *limit = wide ? (long long)PY_SSIZE_T_MAX : (long long)INT32_MAX;
    return offsets;
}

/* offsets[i + 1] = total, as int64 when wide, else int32. */
static void
put_offset(char *o, Py_ssize_t i, long long total, int wide)
{
    if (wide) {
        int64_t at = (int64_t)total;
        memcpy(o + (i + 1) * 8, &at, 8);
    }
    else {
        int32_t at = (int32_t)total;
        memcpy(o + (i + 1) * 4, &at, 4);
    }
}

PyDoc_STRVAR(join_bytes_doc,
"join_bytes(items, wide) -> (data, offsets)\n\n"
"The bytes objects of items (a sequence) joined, and the offsets of an\n"
"Arrow binary array over them: len(items) + 1 native integers, int64 when\n"
"wide, else int32. TypeError when an item is not bytes (None, bytearray,\n"
"str: the caller takes its general path), OverflowError when the total\n"
"does not fit int32 offsets. Mirror of wspcap.tables.arrays.py_join_bytes.");

static PyObject *
join_bytes(PyObject *self, PyObject *args)
{
    PyObject *items, *seq, *offsets = NULL, *data = NULL;
    int wide;
    Py_ssize_t n, i;
    PyObject **item;
    long long total = 0, limit;
    char *o, *d;

    if (!PyArg_ParseTuple(args, "Op:join_bytes", &items, &wide))
        return NULL;
    seq = PySequence_Fast(items, "join_bytes: a sequence expected");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    item = PySequence_Fast_ITEMS(seq);
    offsets = new_offsets(n, wide, &limit);
    if (offsets == NULL)
        goto fail;
    o = PyBytes_AS_STRING(offsets);
    for (i = 0; i < n; i++) {
        if (!PyBytes_Check(item[i])) {
            PyErr_Format(PyExc_TypeError, "join_bytes: item %zd is not bytes", i);
            goto fail;
        }
        total += PyBytes_GET_SIZE(item[i]);
        if (total > limit) {
            PyErr_SetString(PyExc_OverflowError, "join_bytes: more bytes than 32-bit offsets hold");
            goto fail;
        }
        put_offset(o, i, total, wide);
    }
    data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (data == NULL)
        goto fail;
    d = PyBytes_AS_STRING(data);
    for (i = 0; i < n; i++) {
        Py_ssize_t size = PyBytes_GET_SIZE(item[i]);
        memcpy(d, PyBytes_AS_STRING(item[i]), (size_t)size);
        d += size;
    }
    Py_DECREF(seq);
    return Py_BuildValue("(NN)", data, offsets);

fail:
    Py_XDECREF(offsets);
    Py_XDECREF(data);
    Py_DECREF(seq);
    return NULL;
}

PyDoc_STRVAR(join_strs_doc,
"join_strs(items, wide) -> (data, offsets, null)\n\n"
"The str objects of items (a sequence; None for null) encoded as UTF-8 and\n"
"joined, the offsets of an Arrow string array over them (as join_bytes\n"
"gives them), and null: None when no item is None, else one byte per item,\n"
"1 where it is None. TypeError when an item is neither str nor None,\n"
"UnicodeEncodeError for a lone surrogate, OverflowError when the total does\n"
"not fit int32 offsets. Mirror of wspcap.tables.arrays.py_join_strs.");

static PyObject *
join_strs(PyObject *self, PyObject *args)
{
    PyObject *items, *seq, *offsets = NULL, *data = NULL, *null = NULL;
    int wide;
    Py_ssize_t n, i, size;
    PyObject **item;
    long long total = 0, limit;
    char *o, *d, *z = NULL;
    const char *text;

    if (!PyArg_ParseTuple(args, "Op:join_strs", &items, &wide))
        return NULL;
    seq = PySequence_Fast(items, "join_strs: a sequence expected");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    item = PySequence_Fast_ITEMS(seq);
    offsets = new_offsets(n, wide, &limit);
    if (offsets == NULL)
        goto fail;
    o = PyBytes_AS_STRING(offsets);
    for (i = 0; i < n; i++) {
        if (item[i] == Py_None) {
            if (null == NULL) {
                null = PyBytes_FromStringAndSize(NULL, n);
                if (null == NULL)
                    goto fail;
                z = PyBytes_AS_STRING(null);
                memset(z, 0, (size_t)n);
            }
            z[i] = 1;
        }
        else if (!PyUnicode_Check(item[i])) {
            PyErr_Format(PyExc_TypeError, "join_strs: item %zd is neither str nor None", i);
            goto fail;
        }
        else {
            /* (the UTF-8 of an ASCII string is its own data; another's is
               made once and kept by the string, so the second pass finds it) */
            if (PyUnicode_AsUTF8AndSize(item[i], &size) == NULL)
                goto fail;
            total += size;
            if (total > limit) {
                PyErr_SetString(PyExc_OverflowError,
                                "join_strs: more bytes than 32-bit offsets hold");
                goto fail;
            }
        }
        put_offset(o, i, total, wide);
    }
    data = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (data == NULL)
        goto fail;
    d = PyBytes_AS_STRING(data);
    for (i = 0; i < n; i++) {
        if (item[i] == Py_None)
            continue;
        text = PyUnicode_AsUTF8AndSize(item[i], &size);
        if (text == NULL)
            goto fail;
        memcpy(d, text, (size_t)size);
        d += size;
    }
    Py_DECREF(seq);
    if (null == NULL) {
        Py_INCREF(Py_None);
        null = Py_None;
    }
    return Py_BuildValue("(NNN)", data, offsets, null);

fail:
    Py_XDECREF(offsets);
    Py_XDECREF(data);
    Py_XDECREF(null);
    Py_DECREF(seq);
    return NULL;
}

PyDoc_STRVAR(codes_of_doc,
"codes_of(names, index) -> bytes\n\n"
"The code of each of names (a sequence) as index (a dict: name -> int)\n"
"gives it, -1 for a name it lacks, as native int32. Mirror of\n"
"wspcap.tables.arrays.py_codes_of.");

static PyObject *
codes_of(PyObject *self, PyObject *args)
{
    PyObject *names, *index, *seq, *out, *last = NULL, *found;
    Py_ssize_t n, i;
    PyObject **item;
    int32_t *codes, code = -1;
    long value;

    if (!PyArg_ParseTuple(args, "OO!:codes_of", &names, &PyDict_Type, &index))
        return NULL;
    seq = PySequence_Fast(names, "codes_of: a sequence expected");
    if (seq == NULL)
        return NULL;
    n = PySequence_Fast_GET_SIZE(seq);
    item = PySequence_Fast_ITEMS(seq);
    out = PyBytes_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int32_t));
    if (out == NULL)
        goto fail;
    codes = (int32_t *)PyBytes_AS_STRING(out);
    for (i = 0; i < n; i++) {
        /* (a column's names are a few objects, over and over: the one looked
           up last is not looked up again) */
        if (item[i] != last) {
            found = PyDict_GetItemWithError(index, item[i]);
            if (found == NULL) {
                if (PyErr_Occurred())
                    goto fail;
                code = -1;
            }
            else {
                value = PyLong_AsLong(found);
                if (value == -1 && PyErr_Occurred())
                    goto fail;
                if (value < INT32_MIN || value > INT32_MAX) {
                    PyErr_SetString(PyExc_OverflowError, "codes_of: a code past int32");
                    goto fail;
                }
                code = (int32_t)value;
            }
            /* (seq holds a reference to it while the loop runs) */
            last = item[i];
        }
        codes[i] = code;
    }
    Py_DECREF(seq);
    return out;

fail:
    Py_XDECREF(out);
    Py_DECREF(seq);
    return NULL;
}

static PyMethodDef methods[] = {
    {"codes_of", codes_of, METH_VARARGS, codes_of_doc},
    {"join_bytes", join_bytes, METH_VARARGS, join_bytes_doc},
    {"join_strs", join_strs, METH_VARARGS, join_strs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wspcap.tables._speedups",
    "Compiled mirrors of wspcap.tables hot loops (optional; pure-Python references in "
    "wspcap.tables.arrays).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
