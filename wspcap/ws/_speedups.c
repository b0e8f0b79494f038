/*
 * Compiled mirrors of wspcap.ws.mask.py_unmask, py_frame_payloads and
 * wspcap.ws.runs.py_whole_frames (see those functions for what they do, and
 * wspcap/ws/runs.py's design note for why they exist).
 *
 * Built optionally (pyproject.toml: ext-modules, optional): where no C
 * compiler is at hand, the pure-Python function is used and nothing else
 * changes. tests/unit/test_speedups.py compares the two on generated input.
 *
 * Every position is checked against the buffer before a byte is read: a
 * frame whose payload (or masking key) is not wholly in the buffer raises
 * ValueError, never reads out of bounds.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "../_speedups.h"

/* dst[i] = src[i] ^ key[i % 4], eight bytes at a time. */
static void
xor_key(unsigned char *dst, const unsigned char *src, Py_ssize_t n, const unsigned char key[4])
{
    uint64_t k8;
    unsigned char kk[8];
    Py_ssize_t i = 0;

    memcpy(kk, key, 4);
    memcpy(kk + 4, key, 4);
    memcpy(&k8, kk, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, src + i, 8);
        w ^= k8;
        memcpy(dst + i, &w, 8);
    }
    for (; i < n; i++)
        dst[i] = src[i] ^ key[i & 3];
}

PyDoc_STRVAR(frame_payloads_doc,
"frame_payloads(buf, starts, lengths, masked) -> list[bytes]\n\n"
"The payloads buf[starts[i]:starts[i] + lengths[i]], each unmasked where\n"
"masked[i] by the 4 bytes just before it. starts and lengths: int64 arrays;\n"
"masked: a bool array. Mirror of wspcap.ws.mask.frame_payloads.");

static PyObject *
frame_payloads(PyObject *self, PyObject *args)
{
    PyObject *o_buf, *o_starts, *o_lengths, *o_masked;
    Py_buffer buf, starts, lengths, masked;
    PyObject *out = NULL;
    Py_ssize_t count, i;

    if (!PyArg_ParseTuple(args, "OOOO:frame_payloads", &o_buf, &o_starts, &o_lengths, &o_masked))
        return NULL;
    if (PyObject_GetBuffer(o_buf, &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    if (get_array(o_starts, &starts, 8, "starts") < 0)
        goto release_buf;
    if (get_array(o_lengths, &lengths, 8, "lengths") < 0)
        goto release_starts;
    if (get_array(o_masked, &masked, 1, "masked") < 0)
        goto release_lengths;

    count = starts.shape[0];
    if (lengths.shape[0] != count || masked.shape[0] != count) {
        PyErr_SetString(PyExc_ValueError, "starts, lengths and masked differ in length");
        goto release;
    }
    out = PyList_New(count);
    if (out == NULL)
        goto release;
    {
        const unsigned char *data = (const unsigned char *)buf.buf;
        const int64_t *xs = (const int64_t *)starts.buf;
        const int64_t *ns = (const int64_t *)lengths.buf;
        const unsigned char *ms = (const unsigned char *)masked.buf;
        Py_ssize_t size = buf.len;

        for (i = 0; i < count; i++) {
            int64_t x = xs[i], n = ns[i];
            PyObject *item;

            if (x < 0 || n < 0 || x > size || n > size - x || (ms[i] && x < 4)) {
                PyErr_Format(PyExc_ValueError, "frame %zd lies outside the buffer", i);
                Py_CLEAR(out);
                goto release;
            }
            if (!ms[i]) {
                item = PyBytes_FromStringAndSize((const char *)data + x, (Py_ssize_t)n);
            } else {
                item = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
                if (item != NULL)
                    xor_key((unsigned char *)PyBytes_AS_STRING(item), data + x,
                            (Py_ssize_t)n, data + x - 4);
            }
            if (item == NULL) {
                Py_CLEAR(out);
                goto release;
            }
            PyList_SET_ITEM(out, i, item);
        }
    }
release:
    PyBuffer_Release(&masked);
release_lengths:
    PyBuffer_Release(&lengths);
release_starts:
    PyBuffer_Release(&starts);
release_buf:
    PyBuffer_Release(&buf);
    return out;
}

PyDoc_STRVAR(whole_frames_doc,
"whole_frames(buf, ps, sizes) -> (header_lengths, payload_lengths) | None\n\n"
"When each segment buf[ps[i]:ps[i] + sizes[i]] is exactly one whole frame\n"
"with a 7- or 16-bit length: each frame's header length (masking key\n"
"included) and payload length, as two bytearrays of native int64; else\n"
"None. ps and sizes: int64 arrays. Mirror of\n"
"wspcap.ws.runs.py_whole_frames.");

static PyObject *
whole_frames(PyObject *self, PyObject *args)
{
    PyObject *o_buf, *o_ps, *o_sizes;
    Py_buffer buf, ps, sizes;
    PyObject *hls = NULL, *lens = NULL, *out = NULL;
    Py_ssize_t count, i;

    if (!PyArg_ParseTuple(args, "OOO:whole_frames", &o_buf, &o_ps, &o_sizes))
        return NULL;
    if (PyObject_GetBuffer(o_buf, &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    if (get_array(o_ps, &ps, 8, "ps") < 0)
        goto release_buf;
    if (get_array(o_sizes, &sizes, 8, "sizes") < 0)
        goto release_ps;
    count = ps.shape[0];
    if (sizes.shape[0] != count) {
        PyErr_SetString(PyExc_ValueError, "ps and sizes differ in length");
        goto release;
    }
    if (count == 0) {
        out = Py_NewRef(Py_None);
        goto release;
    }
    hls = PyByteArray_FromStringAndSize(NULL, count * 8);
    lens = PyByteArray_FromStringAndSize(NULL, count * 8);
    if (hls == NULL || lens == NULL)
        goto release;
    {
        const unsigned char *data = (const unsigned char *)buf.buf;
        const int64_t *xs = (const int64_t *)ps.buf;
        const int64_t *ss = (const int64_t *)sizes.buf;
        int64_t *hl = (int64_t *)PyByteArray_AS_STRING(hls);
        int64_t *len = (int64_t *)PyByteArray_AS_STRING(lens);
        Py_ssize_t size = buf.len;

        for (i = 0; i < count; i++) {
            int64_t x = xs[i], s = ss[i], h, n;
            unsigned char b1;

            if (x < 0 || s < 0 || x > size || s > size - x) {
                PyErr_Format(PyExc_ValueError, "segment %zd lies outside the buffer", i);
                goto release;
            }
            if (s < 2)
                goto not_whole;
            b1 = data[x + 1];
            n = b1 & 0x7f;
            if (n == 127)
                goto not_whole;
            if (n == 126) {
                if (s < 4)
                    goto not_whole;
                n = ((int64_t)data[x + 2] << 8) | data[x + 3];
                h = 4;
            } else {
                h = 2;
            }
            if (b1 & 0x80)
                h += 4;
            if (h + n != s)
                goto not_whole;
            hl[i] = h;
            len[i] = n;
        }
    }
    out = PyTuple_Pack(2, hls, lens);
    goto release;
not_whole:
    out = Py_NewRef(Py_None);
release:
    Py_XDECREF(hls);
    Py_XDECREF(lens);
    PyBuffer_Release(&sizes);
release_ps:
    PyBuffer_Release(&ps);
release_buf:
    PyBuffer_Release(&buf);
    return out;
}

PyDoc_STRVAR(unmask_doc,
"unmask(payload, key, start=0) -> bytes\n\n"
"payload XORed with the 4-byte masking key, the key rotated by start % 4\n"
"(for a chunk that does not start the payload). Mirror of\n"
"wspcap.ws.mask.py_unmask.");

static PyObject *
unmask(PyObject *self, PyObject *args)
{
    Py_buffer payload, key;
    Py_ssize_t start = 0;
    PyObject *out = NULL;
    unsigned char k[4];
    int i;

    if (!PyArg_ParseTuple(args, "y*y*|n:unmask", &payload, &key, &start))
        return NULL;
    if (key.len != 4) {
        PyErr_SetString(PyExc_ValueError, "the masking key is 4 bytes");
        goto release;
    }
    for (i = 0; i < 4; i++)
        k[i] = ((const unsigned char *)key.buf)[(i + (start & 3)) & 3];
    out = PyBytes_FromStringAndSize(NULL, payload.len);
    if (out != NULL)
        xor_key((unsigned char *)PyBytes_AS_STRING(out), (const unsigned char *)payload.buf,
                payload.len, k);
release:
    PyBuffer_Release(&key);
    PyBuffer_Release(&payload);
    return out;
}

static PyMethodDef methods[] = {
    {"unmask", unmask, METH_VARARGS, unmask_doc},
    {"frame_payloads", frame_payloads, METH_VARARGS, frame_payloads_doc},
    {"whole_frames", whole_frames, METH_VARARGS, whole_frames_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wspcap.ws._speedups",
    "Compiled mirrors of wspcap.ws hot loops (optional; pure-Python references in wspcap.ws).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
