/*
 * Compiled mirror of wspcap.tls.protection.py_open_runs (see that function
 * for what it does): the loop that hands each TLS 1.3 record of a block's
 * runs to its AEAD's decrypt, one turn per record, and joins what opens. The
 * decryption itself is the `cryptography` package's, called here as from
 * Python: this loop only cuts the record's additional data and fragment out
 * of the buffer, makes its nonce and copies the plaintext into the joined
 * bytes, which in Python cost about as much as the decrypt call.
 *
 * Built optionally (pyproject.toml: ext-modules, optional): where no C
 * compiler is at hand, the pure-Python function is used and nothing else
 * changes. tests/unit/test_speedups.py compares the two on generated input.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../_speedups.h"

#define HEADER_LEN 5
#define NONCE_LEN 12
/* Headers kept for reuse, by the low byte of their length: a run's records
 * have few distinct headers (type, version, length), and the additional data
 * need not be a new object each time. */
#define HEADERS 256

PyDoc_STRVAR(open_runs_doc,
"open_runs(runs, starts, stops, refused) -> (bytes, bytearray)\n\n"
"Open the TLS 1.3 records of runs, each (decrypt, iv, seq, src, count): its\n"
"records are the next count spans src[starts[i]:stops[i]] (each its 5-byte\n"
"header, the additional data, then its fragment), opened from sequence\n"
"number seq on with decrypt(nonce, fragment, header), the nonce being iv XOR\n"
"the sequence number, up to the first whose decrypt raises refused. Returns\n"
"what opened, joined, and each record's plaintext length as int64 (-1: not\n"
"opened). Mirror of wspcap.tls.protection.py_open_runs.");

/* One run's arguments, checked: 0, or -1 with an exception set. */
static int
run_args(PyObject *run, PyObject **decrypt, const unsigned char **iv, unsigned long long *seq,
         PyObject **src, Py_ssize_t *count)
{
    PyObject *o_iv, *o_seq, *o_count;

    if (!PyTuple_Check(run) || PyTuple_GET_SIZE(run) != 5) {
        PyErr_SetString(PyExc_TypeError, "runs: (decrypt, iv, seq, src, count) tuples expected");
        return -1;
    }
    *decrypt = PyTuple_GET_ITEM(run, 0);
    o_iv = PyTuple_GET_ITEM(run, 1);
    o_seq = PyTuple_GET_ITEM(run, 2);
    *src = PyTuple_GET_ITEM(run, 3);
    o_count = PyTuple_GET_ITEM(run, 4);
    if (!PyBytes_Check(o_iv) || !PyBytes_Check(*src)) {
        PyErr_SetString(PyExc_TypeError, "iv and src: bytes expected");
        return -1;
    }
    if (PyBytes_GET_SIZE(o_iv) != NONCE_LEN) {
        PyErr_SetString(PyExc_ValueError, "iv: 12 bytes expected");
        return -1;
    }
    *iv = (const unsigned char *)PyBytes_AS_STRING(o_iv);
    *seq = PyLong_AsUnsignedLongLong(o_seq);
    if (*seq == (unsigned long long)-1 && PyErr_Occurred())
        return -1;
    *count = PyLong_AsSsize_t(o_count);
    if (*count == -1 && PyErr_Occurred())
        return -1;
    if (*count < 0) {
        PyErr_SetString(PyExc_ValueError, "count: not negative expected");
        return -1;
    }
    return 0;
}

static PyObject *
open_runs(PyObject *self, PyObject *args)
{
    PyObject *list, *runs = NULL, *starts_obj, *stops_obj, *refused;
    PyObject *plain = NULL, *lengths_obj = NULL, *result = NULL;
    PyObject *headers[HEADERS] = {NULL};
    Py_buffer sv, ev;
    Py_ssize_t n, nruns, r, i, at, used = 0, room = 0;
    const int64_t *starts, *stops;
    int64_t *lengths;

    if (!PyArg_ParseTuple(args, "O!OOO:open_runs", &PyList_Type, &list, &starts_obj, &stops_obj,
                          &refused))
        return NULL;
    if (get_array(starts_obj, &sv, 8, "starts") < 0)
        return NULL;
    if (get_array(stops_obj, &ev, 8, "stops") < 0) {
        PyBuffer_Release(&sv);
        return NULL;
    }
    starts = (const int64_t *)sv.buf;
    stops = (const int64_t *)ev.buf;
    n = sv.shape[0];
    if (ev.shape[0] != n) {
        PyErr_SetString(PyExc_ValueError, "starts and stops differ in length");
        goto done;
    }
    /* (a tuple of the runs: decrypt may change the list, not this) */
    runs = PyList_AsTuple(list);
    if (runs == NULL)
        goto done;
    nruns = PyTuple_GET_SIZE(runs);
    /* Check every run before opening any: the records within their buffer,
     * the sequence numbers within 64 bits, the counts adding up. */
    for (r = 0, at = 0; r < nruns; r++) {
        PyObject *decrypt, *src;
        const unsigned char *iv;
        unsigned long long seq;
        Py_ssize_t count;

        if (run_args(PyTuple_GET_ITEM(runs, r), &decrypt, &iv, &seq, &src, &count) < 0)
            goto done;
        if (count > n - at) {
            PyErr_SetString(PyExc_ValueError, "the runs' counts do not add up to the records");
            goto done;
        }
        if (count && seq > UINT64_MAX - (unsigned long long)(count - 1)) {
            PyErr_SetString(PyExc_ValueError, "sequence number past 2**64 - 1");
            goto done;
        }
        for (i = at; i < at + count; i++) {
            if (starts[i] < 0 || stops[i] < starts[i] + HEADER_LEN
                    || stops[i] > PyBytes_GET_SIZE(src)) {
                PyErr_Format(PyExc_ValueError, "record %zd out of the buffer", i);
                goto done;
            }
            room += stops[i] - starts[i] - HEADER_LEN;
        }
        at += count;
    }
    if (at != n) {
        PyErr_SetString(PyExc_ValueError, "the runs' counts do not add up to the records");
        goto done;
    }
    lengths_obj = PyByteArray_FromStringAndSize(NULL, n * (Py_ssize_t)sizeof(int64_t));
    /* (an AEAD's plaintext is shorter than its ciphertext: room, the
     * fragments' length, is enough unless decrypt is something else) */
    plain = PyBytes_FromStringAndSize(NULL, room);
    if (lengths_obj == NULL || plain == NULL)
        goto done;
    lengths = (int64_t *)PyByteArray_AS_STRING(lengths_obj);
    for (i = 0; i < n; i++)
        lengths[i] = -1;
    for (r = 0, at = 0; r < nruns; r++) {
        PyObject *decrypt, *src;
        const unsigned char *iv, *base;
        unsigned long long seq;
        Py_ssize_t count;

        if (run_args(PyTuple_GET_ITEM(runs, r), &decrypt, &iv, &seq, &src, &count) < 0)
            goto done;
        base = (const unsigned char *)PyBytes_AS_STRING(src);
        for (i = at; i < at + count; i++) {
            unsigned char nonce[NONCE_LEN];
            uint64_t s = (uint64_t)seq + (uint64_t)(i - at);
            const unsigned char *record = base + starts[i];
            PyObject *nonce_obj, *fragment, *header, *inner;
            Py_ssize_t size;
            int k;

            memcpy(nonce, iv, NONCE_LEN);
            for (k = 0; k < 8; k++)
                nonce[NONCE_LEN - 1 - k] ^= (unsigned char)(s >> (8 * k));
            header = headers[record[HEADER_LEN - 1]];
            if (header == NULL || memcmp(PyBytes_AS_STRING(header), record, HEADER_LEN)) {
                header = PyBytes_FromStringAndSize((const char *)record, HEADER_LEN);
                if (header == NULL)
                    goto done;
                Py_XSETREF(headers[record[HEADER_LEN - 1]], header);
            }
            nonce_obj = PyBytes_FromStringAndSize((const char *)nonce, NONCE_LEN);
            fragment = PyBytes_FromStringAndSize((const char *)record + HEADER_LEN,
                                                 stops[i] - starts[i] - HEADER_LEN);
            if (nonce_obj == NULL || fragment == NULL) {
                Py_XDECREF(nonce_obj);
                Py_XDECREF(fragment);
                goto done;
            }
            {
                PyObject *call[3] = {nonce_obj, fragment, header};

                inner = PyObject_Vectorcall(decrypt, call, 3, NULL);
            }
            Py_DECREF(nonce_obj);
            Py_DECREF(fragment);
            if (inner == NULL) {
                if (PyErr_ExceptionMatches(refused)) {
                    PyErr_Clear();
                    break;  /* the rest of the run is not opened */
                }
                goto done;
            }
            if (!PyBytes_Check(inner)) {
                Py_DECREF(inner);
                PyErr_SetString(PyExc_TypeError, "decrypt: bytes expected");
                goto done;
            }
            size = PyBytes_GET_SIZE(inner);
            if (size > room - used) {
                room = used + size > 2 * room ? used + size : 2 * room;
                if (_PyBytes_Resize(&plain, room) < 0) {
                    Py_DECREF(inner);
                    goto done;
                }
            }
            memcpy(PyBytes_AS_STRING(plain) + used, PyBytes_AS_STRING(inner), size);
            used += size;
            lengths[i] = size;
            Py_DECREF(inner);
        }
        at += count;
    }
    if (used != room && _PyBytes_Resize(&plain, used) < 0)
        goto done;
    result = PyTuple_Pack(2, plain, lengths_obj);
done:
    for (i = 0; i < HEADERS; i++)
        Py_XDECREF(headers[i]);
    Py_XDECREF(plain);
    Py_XDECREF(lengths_obj);
    Py_XDECREF(runs);
    PyBuffer_Release(&sv);
    PyBuffer_Release(&ev);
    return result;
}

static PyMethodDef methods[] = {
    {"open_runs", open_runs, METH_VARARGS, open_runs_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wspcap.tls._speedups",
    "Compiled mirrors of wspcap.tls hot loops (optional; pure-Python references in wspcap.tls).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
