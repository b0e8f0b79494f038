/*
 * Compiled mirror of wspcap.sources.files.pcap_records (see that function
 * for what it does): the walk over a classic pcap file's record headers,
 * one loop turn per packet, which the rest of the reader does a block at a
 * time with NumPy.
 *
 * Built optionally (pyproject.toml: ext-modules, optional): where no C
 * compiler is at hand, the pure-Python function is used and nothing else
 * changes. tests/unit/test_speedups.py compares the two on generated input.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

PyDoc_STRVAR(pcap_records_doc,
"pcap_records(buf, pos, big_endian) -> (starts, pos, pending)\n\n"
"Walk classic pcap record headers in buf from pos: the data offsets of the\n"
"records wholly in buf, the position after the last of them, and the\n"
"captured length declared by the record cut by the end of buf (-1 when buf\n"
"ends before a whole record header). Mirror of\n"
"wspcap.sources.files.pcap_records.");

static PyObject *
pcap_records(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    Py_ssize_t pos;
    int big;
    PyObject *starts, *result = NULL;
    long long pending = -1;

    if (!PyArg_ParseTuple(args, "y*np:pcap_records", &buf, &pos, &big))
        return NULL;
    if (pos < 0) {
        PyBuffer_Release(&buf);
        PyErr_SetString(PyExc_ValueError, "negative position");
        return NULL;
    }
    starts = PyList_New(0);
    if (starts == NULL) {
        PyBuffer_Release(&buf);
        return NULL;
    }
    {
        const unsigned char *p = (const unsigned char *)buf.buf;
        Py_ssize_t end = buf.len;

        while (pos <= end - 16) {
            const unsigned char *c = p + pos + 8;
            uint32_t caplen = big
                ? ((uint32_t)c[0] << 24) | ((uint32_t)c[1] << 16) | ((uint32_t)c[2] << 8) | c[3]
                : ((uint32_t)c[3] << 24) | ((uint32_t)c[2] << 16) | ((uint32_t)c[1] << 8) | c[0];
            PyObject *at;

            if ((Py_ssize_t)caplen > end - pos - 16) {
                pending = caplen;
                break;
            }
            at = PyLong_FromSsize_t(pos + 16);
            if (at == NULL || PyList_Append(starts, at) < 0) {
                Py_XDECREF(at);
                Py_DECREF(starts);
                PyBuffer_Release(&buf);
                return NULL;
            }
            Py_DECREF(at);
            pos += 16 + (Py_ssize_t)caplen;
        }
    }
    result = Py_BuildValue("(NnL)", starts, pos, pending);
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"pcap_records", pcap_records, METH_VARARGS, pcap_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wspcap.sources._speedups",
    "Compiled mirrors of wspcap.sources hot loops (optional; pure-Python references in "
    "wspcap.sources).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
