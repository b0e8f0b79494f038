/*
 * Compiled mirror of wspcap.tls.protection.py_open_spans (see that function
 * for what it does): the loop that hands each TLS 1.3 record of a run to the
 * AEAD's decrypt, one turn per record. The decryption itself is the
 * `cryptography` package's, called here as from Python: this loop only cuts
 * the record's additional data and fragment out of the buffer and makes its
 * nonce, which in Python cost about as much as the decrypt call.
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

PyDoc_STRVAR(open_spans_doc,
"open_spans(decrypt, iv, seq, src, starts, stops, refused) -> list[bytes]\n\n"
"Open the TLS 1.3 records src[starts[i]:stops[i]] (each its 5-byte header,\n"
"the additional data, then its fragment) from sequence number seq on, with\n"
"decrypt(nonce, fragment, header), the nonce being iv XOR the sequence\n"
"number; up to the first whose decrypt raises refused. Mirror of\n"
"wspcap.tls.protection.py_open_spans.");

static PyObject *
open_spans(PyObject *self, PyObject *args)
{
    PyObject *decrypt, *starts_obj, *stops_obj, *refused;
    Py_buffer iv, src, sv, ev;
    unsigned long long seq;
    PyObject *out = NULL;

    if (!PyArg_ParseTuple(args, "Oy*Ky*OOO:open_spans", &decrypt, &iv, &seq, &src,
                          &starts_obj, &stops_obj, &refused))
        return NULL;
    if (iv.len != NONCE_LEN) {
        PyErr_SetString(PyExc_ValueError, "iv: 12 bytes expected");
        goto release_both;
    }
    if (get_array(starts_obj, &sv, 8, "starts") < 0)
        goto release_both;
    if (get_array(stops_obj, &ev, 8, "stops") < 0) {
        PyBuffer_Release(&sv);
        goto release_both;
    }
    {
        const int64_t *starts = (const int64_t *)sv.buf, *stops = (const int64_t *)ev.buf;
        const unsigned char *base = (const unsigned char *)src.buf;
        const unsigned char *ivb = (const unsigned char *)iv.buf;
        Py_ssize_t n = sv.shape[0], i;

        if (ev.shape[0] != n) {
            PyErr_SetString(PyExc_ValueError, "starts and stops differ in length");
            goto release_all;
        }
        if (n && seq > UINT64_MAX - (unsigned long long)(n - 1)) {
            PyErr_SetString(PyExc_ValueError, "sequence number past 2**64 - 1");
            goto release_all;
        }
        for (i = 0; i < n; i++) {
            if (starts[i] < 0 || stops[i] < starts[i] + HEADER_LEN || stops[i] > src.len) {
                PyErr_Format(PyExc_ValueError, "record %zd out of the buffer", i);
                goto release_all;
            }
        }
        out = PyList_New(0);
        if (out == NULL)
            goto release_all;
        for (i = 0; i < n; i++) {
            unsigned char nonce[NONCE_LEN];
            uint64_t s = (uint64_t)seq + (uint64_t)i;
            PyObject *nonce_obj, *fragment, *header, *inner;
            int k;

            memcpy(nonce, ivb, NONCE_LEN);
            for (k = 0; k < 8; k++)
                nonce[NONCE_LEN - 1 - k] ^= (unsigned char)(s >> (8 * k));
            nonce_obj = PyBytes_FromStringAndSize((const char *)nonce, NONCE_LEN);
            fragment = PyBytes_FromStringAndSize((const char *)base + starts[i] + HEADER_LEN,
                                                 stops[i] - starts[i] - HEADER_LEN);
            header = PyBytes_FromStringAndSize((const char *)base + starts[i], HEADER_LEN);
            if (nonce_obj == NULL || fragment == NULL || header == NULL) {
                Py_XDECREF(nonce_obj);
                Py_XDECREF(fragment);
                Py_XDECREF(header);
                Py_CLEAR(out);
                goto release_all;
            }
            {
                PyObject *call[3] = {nonce_obj, fragment, header};

                inner = PyObject_Vectorcall(decrypt, call, 3, NULL);
            }
            Py_DECREF(nonce_obj);
            Py_DECREF(fragment);
            Py_DECREF(header);
            if (inner == NULL) {
                if (PyErr_ExceptionMatches(refused)) {
                    PyErr_Clear();
                    break;
                }
                Py_CLEAR(out);
                goto release_all;
            }
            if (PyList_Append(out, inner) < 0) {
                Py_DECREF(inner);
                Py_CLEAR(out);
                goto release_all;
            }
            Py_DECREF(inner);
        }
    }
release_all:
    PyBuffer_Release(&sv);
    PyBuffer_Release(&ev);
release_both:
    PyBuffer_Release(&iv);
    PyBuffer_Release(&src);
    return out;
}

static PyMethodDef methods[] = {
    {"open_spans", open_spans, METH_VARARGS, open_spans_doc},
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
