/*
 * Compiled mirror of wspcap.decode.batch.py_headers (see that function for
 * what it reads): the link, IP and TCP header fields of every packet of a
 * block, which the reference gathers with about twenty NumPy passes.
 *
 * The mirror is exact, for every packet, the ones that are not "simple"
 * included: like the reference, a read past a packet's end reads the byte
 * at min(position, last byte of the buffer), and the length checks that
 * make a packet simple never let such a value through.
 *
 * Built optionally (pyproject.toml: ext-modules, optional): where no C
 * compiler is at hand, the NumPy function is used and nothing else changes.
 * tests/unit/test_speedups.py compares the two on generated input.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#include "../_speedups.h"

/* How the link header says what follows (wspcap.decode.batch.LINK_MODES). */
enum { MODE_ETHER = 0, MODE_FAMILY = 1, MODE_VERSION = 2 };

#define ETH_IPV4 0x0800
#define ETH_IPV6 0x86DD
#define IPPROTO_TCP 6

typedef struct {
    const unsigned char *a;
    int64_t last;
} Buf;

static inline int64_t
at(const Buf *b, int64_t i)
{
    return b->a[i < b->last ? i : b->last];
}

static inline int64_t
u16(const Buf *b, int64_t i)
{
    return (at(b, i) << 8) | at(b, i + 1);
}

static inline int64_t
u32(const Buf *b, int64_t i)
{
    return (u16(b, i) << 16) | u16(b, i + 2);
}

PyDoc_STRVAR(headers_doc,
"headers(buf, starts, caplens, mode, off, etype_at, af_inet, af_inet6)\n"
"    -> (simple, v6, seq, ack, flags, pstart, pend)\n\n"
"The header fields of the packets buf[starts[i]:starts[i] + caplens[i]]: two\n"
"bytearrays of bools and five of native int64, one entry a packet. Mirror of\n"
"wspcap.decode.batch.py_headers, whose arguments these are.");

static PyObject *
headers(PyObject *self, PyObject *args)
{
    PyObject *o_buf, *o_starts, *o_caplens, *o_af6;
    Py_buffer buf, starts, caplens;
    int mode;
    Py_ssize_t off, etype_at;
    long af_inet;
    long af6[8];
    Py_ssize_t n_af6, count, i, k;
    PyObject *outs[7] = {NULL};
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "OOOinnlO:headers", &o_buf, &o_starts, &o_caplens, &mode,
                          &off, &etype_at, &af_inet, &o_af6))
        return NULL;
    if (!PyTuple_Check(o_af6) || PyTuple_GET_SIZE(o_af6) > 8) {
        PyErr_SetString(PyExc_TypeError, "af_inet6: a tuple of at most 8 ints");
        return NULL;
    }
    n_af6 = PyTuple_GET_SIZE(o_af6);
    for (k = 0; k < n_af6; k++) {
        af6[k] = PyLong_AsLong(PyTuple_GET_ITEM(o_af6, k));
        if (af6[k] == -1 && PyErr_Occurred())
            return NULL;
    }
    if (mode < MODE_ETHER || mode > MODE_VERSION || off < 0 || etype_at < 0) {
        PyErr_SetString(PyExc_ValueError, "unknown link mode or negative offset");
        return NULL;
    }
    if (PyObject_GetBuffer(o_buf, &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    if (get_array(o_starts, &starts, 8, "starts") < 0)
        goto release_buf;
    if (get_array(o_caplens, &caplens, 8, "caplens") < 0)
        goto release_starts;
    count = starts.shape[0];
    if (caplens.shape[0] != count) {
        PyErr_SetString(PyExc_ValueError, "starts and caplens differ in length");
        goto release;
    }
    if (count && buf.len == 0) {
        PyErr_SetString(PyExc_ValueError, "packets in an empty buffer");
        goto release;
    }
    for (k = 0; k < 7; k++) {
        outs[k] = PyByteArray_FromStringAndSize(NULL, count * (k < 2 ? 1 : 8));
        if (outs[k] == NULL)
            goto release;
    }
    {
        Buf b = {(const unsigned char *)buf.buf, (int64_t)buf.len - 1};
        const int64_t *st = (const int64_t *)starts.buf, *cl = (const int64_t *)caplens.buf;
        unsigned char *simple = (unsigned char *)PyByteArray_AS_STRING(outs[0]);
        unsigned char *v6s = (unsigned char *)PyByteArray_AS_STRING(outs[1]);
        int64_t *seq = (int64_t *)PyByteArray_AS_STRING(outs[2]);
        int64_t *ack = (int64_t *)PyByteArray_AS_STRING(outs[3]);
        int64_t *flags = (int64_t *)PyByteArray_AS_STRING(outs[4]);
        int64_t *pstart = (int64_t *)PyByteArray_AS_STRING(outs[5]);
        int64_t *pend = (int64_t *)PyByteArray_AS_STRING(outs[6]);

        for (i = 0; i < count; i++) {
            int64_t s = st[i], c = cl[i], etype, total, plen, v4_end, v6_end, tcp, end, doff,
                start;
            int enough, v4, v6;

            if (s < 0) {
                PyErr_Format(PyExc_ValueError, "packet %zd starts before the buffer", i);
                goto release;
            }
            if (mode == MODE_ETHER) {
                etype = u16(&b, s + etype_at);
            } else if (mode == MODE_FAMILY) {
                int64_t big = u32(&b, s);
                int64_t little = at(&b, s) | (at(&b, s + 1) << 8) | (at(&b, s + 2) << 16)
                                 | (at(&b, s + 3) << 24);
                int64_t family = little > 0xFFFF ? big : little;
                etype = -1;
                if (family == af_inet)
                    etype = ETH_IPV4;
                else
                    for (k = 0; k < n_af6; k++)
                        if (family == af6[k])
                            etype = ETH_IPV6;
            } else {
                int64_t version = at(&b, s) >> 4;
                etype = version == 4 ? ETH_IPV4 : version == 6 ? ETH_IPV6 : -1;
            }
            enough = c >= off + 40;
            total = u16(&b, s + off + 2);
            v4 = enough && etype == ETH_IPV4 && at(&b, s + off) == 0x45
                 && at(&b, s + off + 9) == IPPROTO_TCP && (u16(&b, s + off + 6) & 0x3FFF) == 0;
            v4_end = total > 0 ? off + total : c;
            plen = u16(&b, s + off + 4);
            v6 = enough && etype == ETH_IPV6 && at(&b, s + off + 6) == IPPROTO_TCP;
            v6_end = plen > 0 ? off + 40 + plen : c;
            v6 = v6 && v6_end >= off + 60;
            tcp = v6 ? off + 40 : off + 20;
            end = v6 ? v6_end : v4_end;
            doff = at(&b, s + tcp + 12);
            start = tcp + ((doff >> 4) << 2);
            simple[i] = (v4 || v6) && doff >= 0x50 && start <= end && c >= end;
            v6s[i] = (unsigned char)v6;
            seq[i] = u32(&b, s + tcp + 4);
            ack[i] = u32(&b, s + tcp + 8);
            flags[i] = at(&b, s + tcp + 13);
            pstart[i] = s + start;
            pend[i] = s + end;
        }
    }
    result = PyTuple_New(7);
    if (result != NULL)
        for (k = 0; k < 7; k++) {
            PyTuple_SET_ITEM(result, k, outs[k]);
            outs[k] = NULL;
        }
release:
    for (k = 0; k < 7; k++)
        Py_XDECREF(outs[k]);
    PyBuffer_Release(&caplens);
release_starts:
    PyBuffer_Release(&starts);
release_buf:
    PyBuffer_Release(&buf);
    return result;
}

static PyMethodDef methods[] = {
    {"headers", headers, METH_VARARGS, headers_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wspcap.decode._speedups",
    "Compiled mirrors of wspcap.decode hot loops (optional; NumPy references in "
    "wspcap.decode.batch).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
