/*
 * Compiled mirror of the JSON-RPC decoder's column path for its common
 * messages (wspcap.app.jsonrpc.JsonRpcDecoder.receive_columns, which says
 * when it is used): one object per message, "jsonrpc": "2.0", a request, a
 * notification, a response or an error, spelled so that what the column
 * path would write can be copied from the payload. Each message is read in
 * one pass over its bytes, checked as strict JSON (RFC 8259) and as UTF-8,
 * and its row made here: kind, method, id, the open requests paired (in a
 * table of their own, OpenRequests), and the row's `fields` text, copied
 * from the payload with the whitespace between tokens left out. The rows
 * are written as columns of buffers (see rpc_rows' doc), which the table
 * makes its Arrow columns of as they are: no object made a row.
 *
 * It takes messages in order and stops at the first it does not take, for
 * the column path to read (msgspec's parse, the reference path): anything
 * this loop is not sure to read as msgspec and the standard library would.
 * That is, besides what is not a JSON-RPC object of those four shapes:
 * a number that is not an integer of at most 18 digits or is "-0", a lone
 * surrogate escape, a key spelled with \/ or \u (two spellings of one key
 * could meet), an object with a key twice, nesting deeper than MAX_DEPTH,
 * an object of more than MAX_KEYS keys, a string id that is not printable
 * ASCII without \/ or \u (an open request is keyed by its id as
 * json.dumps spells it), and params with a key that could name a secret
 * (the column path looks for credentials there: a key holding, in any
 * case, one of SECRET_WORDS, or a byte over 0x7F). A string value spelled
 * with \/ or \u (Python's json.dumps writes non-ASCII so, PHP the slash,
 * Go < > &) is written again as msgspec writes it; every other string, and
 * the rest, is copied. So the rows made here are the rows the column path
 * makes, which tests/unit/app/test_jsonrpc_kernel.py checks on generated
 * messages, spelled every way, against the column path without this loop
 * and against the reference path.
 *
 * Built optionally (pyproject.toml: ext-modules, optional): where no C
 * compiler is at hand, the column path reads every message.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#define MAX_DEPTH 64
#define MAX_KEYS 32
#define MAX_DIGITS 18

enum { T_NONE = 0, T_OBJ, T_ARR, T_STR, T_INT, T_TRUE, T_FALSE, T_NULL };

/* Lower-case words one of which every key that _json._CRED_KEY finds holds
 * (in any case: that regular expression ignores it). */
static const char *SECRET_WORDS[] = {
    "pass", "secret", "token", "ticket", "auth", "key", "bearer", "jwt", "cookie", "credential",
    NULL}; /* (those of one first letter next to each other: see SECRET_START) */

/* A token of the payload: [start, end) (a string with its quotes). */
typedef struct {
    const unsigned char *start, *end;
    int type;
    int escaped; /* a string with an escape */
    int loose; /* a string with an escape msgspec writes otherwise (\/ or \u) */
    int printable; /* a string of bytes 0x20-0x7E only, none loose */
} Tok;

typedef struct {
    const unsigned char *p, *end;
    int keys;   /* keys are looked at for secrets */
    int secret; /* a key looked at could name a secret */
    int loose;  /* a string of the message is loose (written again, not copied) */
    int spaced; /* whitespace was skipped between tokens */
} Scan;

static inline void
skip_ws(Scan *s)
{
    const unsigned char *p = s->p;

    while (p < s->end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    if (p != s->p) {
        s->spaced = 1;
        s->p = p;
    }
}

/* The length of the UTF-8 character at p (its first byte >= 0x80), or 0
 * where it is not one (overlong, a surrogate, past U+10FFFF, cut). */
static inline Py_ssize_t
utf8_char(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0];
    Py_ssize_t n;
    unsigned char lo = 0x80, hi = 0xBF;

    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    }
    else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    }
    else
        return 0;
    if (end - p < n || p[1] < lo || p[1] > hi)
        return 0;
    for (Py_ssize_t i = 2; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    return n;
}

/* Bytes a string holds as they are: printable ASCII but the quote and the
 * backslash (filled by the module's init). */
static unsigned char PLAIN[256];

/* The four hex digits at p, or -1. */
static long
hex4(const unsigned char *p, const unsigned char *end)
{
    long value = 0;

    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        value <<= 4;
        if (c >= '0' && c <= '9')
            value |= c - '0';
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            value |= (c | 0x20) - 'a' + 10;
        else
            return -1;
    }
    return value;
}

/* The first byte from p on that is not PLAIN, or end. Sixteen bytes at a
 * time where the CPU has SSE2 (every x86-64) and sixteen are there: a byte
 * is not plain where it is the quote, the backslash, 0x7F, or under 0x20 or
 * over 0x7F (both under 0x20 as a signed byte); then one byte at a time
 * (6% of the loop's time on chat-jsonrpc, against the bytes one by one). */
static inline const unsigned char *
skip_plain(const unsigned char *p, const unsigned char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'),
                  del = _mm_set1_epi8(0x7F), space = _mm_set1_epi8(0x20);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)p);
        __m128i stop = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
            _mm_or_si128(_mm_cmpeq_epi8(v, del), _mm_cmplt_epi8(v, space)));
        int mask = _mm_movemask_epi8(stop);
        if (mask)
            return p + __builtin_ctz((unsigned)mask);
        p += 16;
    }
#endif
    while (p < end && PLAIN[*p])
        p++;
    return p;
}

/* A string at s->p (its opening quote): 0, or -1 where it is not taken. */
static int
scan_string(Scan *s, Tok *t)
{
    const unsigned char *p = s->p + 1, *end = s->end;

    t->start = s->p;
    t->type = T_STR;
    t->escaped = 0;
    t->loose = 0;
    t->printable = 1;
    while (p < end) {
        p = skip_plain(p, end);
        if (p >= end)
            break;
        unsigned char c = *p;
        if (c == '"') {
            s->p = t->end = p + 1;
            return 0;
        }
        if (c == '\\') {
            if (p + 1 >= end)
                return -1;
            switch (p[1]) {
            case '"': case '\\': case 'b': case 'f': case 'n': case 'r': case 't':
                p += 2;
                break;
            case '/':
                t->loose = 1;
                p += 2;
                break;
            case 'u': {
                long unit = hex4(p + 2, end);
                if (unit >= 0xDC00 && unit <= 0xDFFF)
                    return -1; /* a lone low surrogate */
                if (unit >= 0xD800 && unit <= 0xDBFF) {
                    long low = end - p >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8, end) : -1;
                    if (low < 0xDC00 || low > 0xDFFF)
                        return -1; /* a lone high surrogate */
                    p += 6;
                }
                else if (unit < 0)
                    return -1;
                t->loose = 1;
                p += 6;
                break;
            }
            default:
                return -1; /* not JSON */
            }
            t->escaped = 1;
            if (t->loose) {
                t->printable = 0;
                s->loose = 1;
            }
        }
        else if (c < 0x20)
            return -1;
        else if (c < 0x7F)
            p++;
        else {
            Py_ssize_t n = c == 0x7F ? 1 : utf8_char(p, end);
            if (!n)
                return -1;
            t->printable = 0;
            p += n;
        }
    }
    return -1;
}

/* An integer at s->p: 0, or -1 (a float, "-0", too long, not JSON). */
static int
scan_int(Scan *s, Tok *t)
{
    const unsigned char *p = s->p, *end = s->end, *digits;

    t->start = p;
    t->type = T_INT;
    if (*p == '-')
        p++;
    digits = p;
    if (p >= end || *p < '0' || *p > '9')
        return -1;
    if (*p == '0') {
        p++;
        if (digits != t->start)
            return -1; /* -0: an integer 0, written back "0" */
    }
    else
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    if (p - digits > MAX_DIGITS)
        return -1;
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9')))
        return -1;
    s->p = t->end = p;
    return 0;
}

/* Bytes that, lower-cased, begin one of SECRET_WORDS (filled by the module's
 * init): 0, or 1 + the index of the first such word in SECRET_WORDS (those
 * of one first letter follow each other there). */
static unsigned char SECRET_START[256];

/* n bytes at a and at b the same (keys are short: no call to memcmp). */
static inline int
same(const unsigned char *a, const unsigned char *b, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static int
secret_word(const unsigned char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!SECRET_START[p[i]])
            continue;
        /* (only the words of that first letter) */
        for (const char **word = SECRET_WORDS + SECRET_START[p[i]] - 1;
             *word && (unsigned char)(*word)[0] == (p[i] | 0x20); word++) {
            Py_ssize_t j = 1;
            while ((*word)[j] && i + j < n && (p[i + j] | 0x20) == (unsigned char)(*word)[j])
                j++;
            if (!(*word)[j])
                return 1;
        }
    }
    return 0;
}

static int scan_value(Scan *s, Tok *t, int depth);

/* The members an object is read for: their names, and the one whose value's
 * keys are looked at for secrets (-1: none). */
typedef struct {
    int count;
    const char *const *names;
    const Py_ssize_t *lengths;
    int keys_of;
} Members;

/* The members of a JSON-RPC object the rows need. */
enum { F_JSONRPC, F_METHOD, F_PARAMS, F_ID, F_RESULT, F_ERROR, F_COUNT };
static const char *const RPC_NAMES[F_COUNT] = {
    "jsonrpc", "method", "params", "id", "result", "error"};
static const Py_ssize_t RPC_LENGTHS[F_COUNT] = {7, 6, 6, 2, 6, 5};
static const Members RPC = {F_COUNT, RPC_NAMES, RPC_LENGTHS, F_PARAMS};

/* ... and of its error object. */
enum { E_CODE, E_MESSAGE, E_COUNT };
static const char *const ERROR_NAMES[E_COUNT] = {"code", "message"};
static const Py_ssize_t ERROR_LENGTHS[E_COUNT] = {4, 7};
static const Members ERROR_MEMBERS = {E_COUNT, ERROR_NAMES, ERROR_LENGTHS, -1};

/* Which of the members a key (a string token, not loose) names, or -1. */
static int
member(const Members *want, const Tok *key)
{
    Py_ssize_t n = key->end - key->start - 2;
    for (int f = 0; f < want->count; f++)
        if (want->lengths[f] == n
            && same(key->start + 1, (const unsigned char *)want->names[f], n))
            return f;
    return -1;
}

/* An object or an array at s->p (its opening bracket): 0, or -1. An
 * object's keys are kept to find one twice; where ``want`` is given, the
 * values of its members are put in ``found`` (type T_NONE where absent). */
static int
scan_container(Scan *s, Tok *t, int depth, const Members *want, Tok *found)
{
    const unsigned char *keys[MAX_KEYS];
    Py_ssize_t lens[MAX_KEYS];
    int count = 0, object = *s->p == '{', which = -1;
    unsigned char close = object ? '}' : ']';
    Tok key, value;

    for (int i = 0; want && i < want->count; i++)
        found[i].type = T_NONE;
    t->start = s->p;
    t->type = object ? T_OBJ : T_ARR;
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p = t->end = s->p + 1;
        return 0;
    }
    for (;;) {
        if (object) {
            if (s->p >= s->end || *s->p != '"' || scan_string(s, &key) < 0 || key.loose)
                return -1; /* (a loose key: two spellings of one key could meet) */
            Py_ssize_t n = key.end - key.start;
            for (int i = 0; i < count; i++)
                if (lens[i] == n && same(keys[i], key.start, n))
                    return -1; /* a key twice */
            if (count == MAX_KEYS)
                return -1;
            keys[count] = key.start;
            lens[count++] = n;
            if (s->keys && !s->secret && (!key.printable || secret_word(key.start + 1, n - 2)))
                s->secret = 1;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':')
                return -1;
            s->p++;
            skip_ws(s);
            which = want ? member(want, &key) : -1;
        }
        int keys = s->keys;
        if (which >= 0 && which == want->keys_of)
            s->keys = 1;
        /* (a member's value read into its place: no copy of it after) */
        if (scan_value(s, which >= 0 ? &found[which] : &value, depth) < 0)
            return -1;
        s->keys = keys;
        skip_ws(s);
        if (s->p >= s->end)
            return -1;
        if (*s->p == close) {
            s->p = t->end = s->p + 1;
            return 0;
        }
        if (*s->p != ',')
            return -1;
        s->p++;
        skip_ws(s);
    }
}

static int
scan_literal(Scan *s, Tok *t, const char *word, Py_ssize_t n, int type)
{
    if (s->end - s->p < n || memcmp(s->p, word, n))
        return -1;
    t->start = s->p;
    s->p = t->end = s->p + n;
    t->type = type;
    return 0;
}

/* A value at s->p (not whitespace): 0, or -1 where it is not taken. */
static int
scan_value(Scan *s, Tok *t, int depth)
{
    if (s->p >= s->end)
        return -1;
    switch (*s->p) {
    case '{':
    case '[':
        return depth >= MAX_DEPTH ? -1 : scan_container(s, t, depth + 1, NULL, NULL);
    case '"':
        return scan_string(s, t);
    case 't':
        return scan_literal(s, t, "true", 4, T_TRUE);
    case 'f':
        return scan_literal(s, t, "false", 5, T_FALSE);
    case 'n':
        return scan_literal(s, t, "null", 4, T_NULL);
    default:
        return scan_int(s, t);
    }
}

/* The payload's one object: its members in f (type T_NONE where absent);
 * secret set where params has a key that could name one, loose where a
 * string is, spaced where there is whitespace between tokens. 0, or -1. */
static int
scan_rpc(const unsigned char *p, Py_ssize_t n, Tok *f, int *secret, int *loose, int *spaced)
{
    Scan s = {p, p + n, 0, 0, 0, 0};
    Tok whole;

    skip_ws(&s);
    if (s.p >= s.end || *s.p != '{' || scan_container(&s, &whole, 1, &RPC, f) < 0)
        return -1;
    skip_ws(&s);
    if (s.p != s.end)
        return -1;
    *secret = s.secret;
    *loose = s.loose;
    *spaced = s.spaced;
    return 0;
}

/* The error object's "code" (an integer) and "message" (a string) in e: 0,
 * or -1 where it lacks either (then the column path reads the message). */
static int
error_members(const Tok *err, Tok *e)
{
    Scan s = {err->start, err->end, 0, 0, 0, 0};
    Tok whole;

    if (scan_container(&s, &whole, 1, &ERROR_MEMBERS, e) < 0)
        return -1;
    return e[E_CODE].type == T_INT && e[E_MESSAGE].type == T_STR ? 0 : -1;
}

/* Bytes being written into the bytearray owner's memory (grown as it fills,
 * cut to len at the end: see text_done; no copy of what a call wrote). */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
    PyObject *owner;
} Text;

static int
grow_to(Text *t, Py_ssize_t more)
{
    Py_ssize_t cap = t->cap > 256 ? t->cap : 256;
    while (cap < t->len + more)
        cap *= 2;
    if (PyByteArray_Resize(t->owner, cap) < 0)
        return -1;
    t->data = PyByteArray_AS_STRING(t->owner);
    t->cap = cap;
    return 0;
}

/* A text written into the bytearray owner, after what it holds. */
static Text
text_into(PyObject *owner)
{
    Py_ssize_t n = PyByteArray_GET_SIZE(owner);
    return (Text){PyByteArray_AS_STRING(owner), n, n, owner};
}

/* The end of a text written into a bytearray: cut to what was written. 0,
 * or -1 with an error. */
static int
text_done(Text *t)
{
    return t->cap != t->len ? PyByteArray_Resize(t->owner, t->len) : 0;
}

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

static ALWAYS_INLINE int
grow(Text *t, Py_ssize_t more)
{
    return t->len + more <= t->cap ? 0 : grow_to(t, more);
}

static ALWAYS_INLINE int
put(Text *t, const void *p, Py_ssize_t n)
{
    if (n <= 0) /* (an empty value: nothing to copy, into a buffer maybe not made yet) */
        return 0;
    if (grow(t, n) < 0)
        return -1;
    memcpy(t->data + t->len, p, n);
    t->len += n;
    return 0;
}

#define PUT_LIT(t, s) put((t), (s), (Py_ssize_t)sizeof(s) - 1)

static int put_string(Text *t, const Tok *tok);

/* A value's tokens, whitespace between them left out; where the message has
 * a loose string, each string as msgspec writes its value. Where the
 * message has neither (not loose, not spaced), the value as it is. */
static int
put_compact(Text *t, const Tok *v, int loose, int spaced)
{
    const unsigned char *p = v->start, *end = v->end;
    int in_string = 0;

    if (v->type == T_STR)
        return put_string(t, v);
    if ((v->type != T_OBJ && v->type != T_ARR) || (!loose && !spaced))
        return put(t, p, end - p);
    if (loose) {
        while (p < end) {
            if (*p == '"') {
                Scan s = {p, end, 0, 0, 0, 0};
                Tok tok;
                if (scan_string(&s, &tok) < 0 || put_string(t, &tok) < 0)
                    return -1; /* (read whole already: an error only) */
                p = s.p;
            }
            else if (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
                p++;
            else if (put(t, p++, 1) < 0)
                return -1;
        }
        return 0;
    }
    if (grow(t, end - p) < 0)
        return -1;
    char *out = t->data + t->len;
    while (p < end) {
        unsigned char c = *p++;
        if (in_string) {
            *out++ = (char)c;
            if (c == '\\')
                *out++ = (char)*p++;
            else if (c == '"')
                in_string = 0;
        }
        else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
            *out++ = (char)c;
            in_string = c == '"';
        }
    }
    t->len = out - t->data;
    return 0;
}

/* UTF-8 text as a JSON string as msgspec writes it (and json.dumps with
 * ensure_ascii off): the quote, the backslash and control characters
 * escaped, the rest as it is. */
static int
put_escaped(Text *t, const char *p, Py_ssize_t n)
{
    static const char hex[] = "0123456789abcdef";

    if (grow(t, 6 * n + 2) < 0)
        return -1;
    char *out = t->data + t->len;
    *out++ = '"';
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        }
        else if (c >= 0x20)
            *out++ = (char)c;
        else {
            *out++ = '\\';
            switch (c) {
            case '\b': *out++ = 'b'; break;
            case '\f': *out++ = 'f'; break;
            case '\n': *out++ = 'n'; break;
            case '\r': *out++ = 'r'; break;
            case '\t': *out++ = 't'; break;
            default:
                *out++ = 'u';
                *out++ = '0';
                *out++ = '0';
                *out++ = hex[c >> 4];
                *out++ = hex[c & 15];
            }
        }
    }
    *out++ = '"';
    t->len = out - t->data;
    return 0;
}

/* A Python string as put_escaped writes it: 0, 1 where it has no UTF-8 (a
 * lone surrogate), -1 on error. */
static int
put_str(Text *t, PyObject *str)
{
    Py_ssize_t n;
    const char *p = PyUnicode_AsUTF8AndSize(str, &n);

    if (!p) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeEncodeError))
            return -1;
        PyErr_Clear();
        return 1;
    }
    return put_escaped(t, p, n);
}

/* A string token's value as UTF-8 into buf (room for the token's length:
 * no escape is shorter than what it stands for in UTF-8); its length. */
static Py_ssize_t
decode_string(const Tok *t, char *buf)
{
    const unsigned char *p = t->start + 1, *end = t->end - 1;
    char *out = buf;

    while (p < end) {
        if (*p != '\\') {
            *out++ = (char)*p++;
            continue;
        }
        long cp;
        switch (p[1]) {
        case 'b': *out++ = '\b'; break;
        case 'f': *out++ = '\f'; break;
        case 'n': *out++ = '\n'; break;
        case 'r': *out++ = '\r'; break;
        case 't': *out++ = '\t'; break;
        case 'u':
            cp = hex4(p + 2, end);
            if (cp >= 0xD800 && cp <= 0xDBFF) { /* (paired: scan_string saw to it) */
                cp = 0x10000 + ((cp - 0xD800) << 10) + (hex4(p + 8, end) - 0xDC00);
                p += 6;
            }
            if (cp < 0x80)
                *out++ = (char)cp;
            else if (cp < 0x800) {
                *out++ = (char)(0xC0 | (cp >> 6));
                *out++ = (char)(0x80 | (cp & 0x3F));
            }
            else if (cp < 0x10000) {
                *out++ = (char)(0xE0 | (cp >> 12));
                *out++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *out++ = (char)(0x80 | (cp & 0x3F));
            }
            else {
                *out++ = (char)(0xF0 | (cp >> 18));
                *out++ = (char)(0x80 | ((cp >> 12) & 0x3F));
                *out++ = (char)(0x80 | ((cp >> 6) & 0x3F));
                *out++ = (char)(0x80 | (cp & 0x3F));
            }
            p += 4; /* (and 2 below) */
            break;
        default: *out++ = (char)p[1]; /* " \ and / */
        }
        p += 2;
    }
    return out - buf;
}

/* A string token as msgspec writes its value: copied where it is not loose. */
static int
put_string(Text *t, const Tok *tok)
{
    if (!tok->loose)
        return put(t, tok->start, tok->end - tok->start);
    char *buf = PyMem_Malloc(tok->end - tok->start);
    if (!buf) {
        PyErr_NoMemory();
        return -1;
    }
    int got = put_escaped(t, buf, decode_string(tok, buf));
    PyMem_Free(buf);
    return got;
}

/* UTF-8 bytes as a str (ASCII made directly). */
static PyObject *
text_of(const char *p, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80)
            return PyUnicode_DecodeUTF8(p, n, "strict");
    PyObject *out = PyUnicode_New(n, 127);
    if (out)
        memcpy(PyUnicode_DATA(out), p, n);
    return out;
}

/* A string token's value as a str. */
static PyObject *
string_of(const Tok *t)
{
    if (!t->escaped)
        return text_of((const char *)t->start + 1, t->end - t->start - 2);
    char *buf = PyMem_Malloc(t->end - t->start);
    if (!buf)
        return PyErr_NoMemory();
    PyObject *str = text_of(buf, decode_string(t, buf));
    PyMem_Free(buf);
    return str;
}

/* The methods made last (a conversation calls a few, over and over): a str
 * made once for each spelling kept here, handed out again (a new
 * reference). Slots are chosen by length and the first and last bytes. */
#define METHOD_SLOTS 32
#define METHOD_MAX 64
static struct {
    Py_ssize_t n;
    unsigned char spelled[METHOD_MAX];
    PyObject *str;
} methods_made[METHOD_SLOTS];

/* A string token that names a method as a str, as string_of makes it. */
static PyObject *
method_of(const Tok *t)
{
    const unsigned char *p = t->start + 1;
    Py_ssize_t n = t->end - t->start - 2;

    if (t->escaped || n > METHOD_MAX || n == 0)
        return string_of(t);
    unsigned slot = ((unsigned)n * 31u + p[0] * 7u + p[n - 1]) % METHOD_SLOTS;
    if (methods_made[slot].str && methods_made[slot].n == n
        && same(methods_made[slot].spelled, p, n))
        return Py_NewRef(methods_made[slot].str);
    PyObject *str = string_of(t);
    if (str) {
        Py_XSETREF(methods_made[slot].str, Py_NewRef(str));
        methods_made[slot].n = n;
        memcpy(methods_made[slot].spelled, p, n);
    }
    return str;
}

/* -- The open requests: an ordered table in place of a dict -------------------
 *
 * OpenRequests is what JsonRpcDecoder.open holds where the compiled loop
 * runs: the requests waiting for their answer, keyed (direction, id as JSON
 * text) -> (msg_index, method, ts), with a dict's behaviour for what the
 * decoder does with it (len, in, [k] = v, pop(k, default), items() in the
 * order the keys came, a key set again keeping its place; clear). The loop
 * opens and answers requests here without making a key, a tuple or an int
 * a row (a dict's were a quarter of the loop's time). Keys are two str
 * (what the decoder makes are ASCII); a value that is not (int, str, int)
 * within int64 is kept as it was given, and the loop leaves the answer to
 * such a request to the column path (what it did with the dict's). Keys are
 * hashed as CPython hashes bytes (SipHash, seeded per process): ids come
 * from the capture, and a table an attacker could fill with colliding keys
 * would make every lookup a walk. */

typedef struct {
    char *key; /* the direction's length (a byte), the direction, the id */
    Py_ssize_t klen;
    Py_hash_t hash;
    int64_t index, ts;
    PyObject *method; /* (a str: a value kept as the two int64 and it) */
    PyObject *value;  /* a value kept as it was given, or NULL */
} Entry;

typedef struct {
    PyObject_HEAD
    Entry *entries; /* in the order the keys came; key NULL: taken */
    Py_ssize_t count, cap, live;
    Py_ssize_t *slots; /* -1 empty, -2 taken, else an entry */
    Py_ssize_t nslots, used; /* (used: slots not empty) */
} OpenRequests;

#define SLOT_EMPTY (-1)
#define SLOT_TAKEN (-2)

static Py_hash_t
hash_key(const char *key, Py_ssize_t n)
{
#if PY_VERSION_HEX >= 0x030E0000
    return Py_HashBuffer(key, n);
#else
    return _Py_HashBytes(key, n);
#endif
}

static void
entry_clear(Entry *e)
{
    PyMem_Free(e->key);
    e->key = NULL;
    Py_CLEAR(e->method);
    Py_CLEAR(e->value);
}

/* The slot of key (its entry's, or the empty one it would take), or -1 on
 * error: never, the table is never full. */
static Py_ssize_t
find_slot(OpenRequests *t, const char *key, Py_ssize_t n, Py_hash_t hash, int *found)
{
    size_t mask = (size_t)t->nslots - 1, i = (size_t)hash & mask, perturb = (size_t)hash;
    Py_ssize_t free_slot = -1;

    for (;;) {
        Py_ssize_t at = t->slots[i];
        if (at == SLOT_EMPTY) {
            *found = 0;
            return free_slot >= 0 ? free_slot : (Py_ssize_t)i;
        }
        if (at == SLOT_TAKEN) {
            if (free_slot < 0)
                free_slot = (Py_ssize_t)i;
        }
        else {
            Entry *e = &t->entries[at];
            if (e->hash == hash && e->klen == n && memcmp(e->key, key, n) == 0) {
                *found = 1;
                return (Py_ssize_t)i;
            }
        }
        perturb >>= 5;
        i = (i * 5 + perturb + 1) & mask;
    }
}

/* The slots made again for the live entries (packed, in order), with room
 * for twice as many: 0, or -1 on error. */
static int
rebuild(OpenRequests *t, Py_ssize_t want)
{
    Py_ssize_t live = 0, nslots = 8;

    for (Py_ssize_t j = 0; j < t->count; j++)
        if (t->entries[j].key)
            t->entries[live++] = t->entries[j];
    t->count = live;
    while (nslots < 3 * (want > live ? want : live))
        nslots *= 2;
    Py_ssize_t *slots = PyMem_Realloc(t->slots, nslots * sizeof(Py_ssize_t));
    if (!slots) {
        PyErr_NoMemory();
        return -1;
    }
    t->slots = slots;
    t->nslots = nslots;
    for (Py_ssize_t i = 0; i < nslots; i++)
        slots[i] = SLOT_EMPTY;
    t->used = live;
    for (Py_ssize_t j = 0; j < live; j++) {
        int found;
        Entry *e = &t->entries[j];
        slots[find_slot(t, e->key, e->klen, e->hash, &found)] = j;
    }
    return 0;
}

/* The entry of key, or NULL. */
static Entry *
table_get(OpenRequests *t, const char *key, Py_ssize_t n, Py_hash_t hash, Py_ssize_t *slot)
{
    int found;

    if (!t->live)
        return NULL;
    *slot = find_slot(t, key, n, hash, &found);
    return found ? &t->entries[t->slots[*slot]] : NULL;
}

/* The entry of key, made (its key copied, no value) where there is none:
 * NULL on error. */
static Entry *
table_put(OpenRequests *t, const char *key, Py_ssize_t n, Py_hash_t hash)
{
    int found;

    if (t->count == t->cap) {
        if (t->count >= 8 && t->live < t->count / 2) {
            if (rebuild(t, t->live + 1) < 0) /* (mostly taken: packed) */
                return NULL;
        }
        else {
            Py_ssize_t cap = t->cap ? 2 * t->cap : 8;
            Entry *entries = PyMem_Realloc(t->entries, cap * sizeof(Entry));
            if (!entries) {
                PyErr_NoMemory();
                return NULL;
            }
            t->entries = entries;
            t->cap = cap;
        }
    }
    if (3 * (t->used + 1) > 2 * t->nslots && rebuild(t, t->live + 1) < 0)
        return NULL;
    Py_ssize_t slot = find_slot(t, key, n, hash, &found);
    if (found)
        return &t->entries[t->slots[slot]];
    char *copy = PyMem_Malloc(n ? n : 1);
    if (!copy) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(copy, key, n);
    Entry *e = &t->entries[t->count];
    e->key = copy;
    e->klen = n;
    e->hash = hash;
    e->method = e->value = NULL;
    e->index = e->ts = 0;
    if (t->slots[slot] == SLOT_EMPTY)
        t->used++;
    t->slots[slot] = t->count++;
    t->live++;
    return e;
}

static void
table_take(OpenRequests *t, Py_ssize_t slot)
{
    entry_clear(&t->entries[t->slots[slot]]);
    t->slots[slot] = SLOT_TAKEN;
    t->live--;
}

#define KEY_MAX 512

/* A key as the table spells it, the direction's length (a byte), the
 * direction (at most 255 bytes), the id: into buf (KEY_MAX bytes), or
 * memory the caller frees where it is longer (*out); its length, or -1 with
 * an error. */
static Py_ssize_t
spell_key(const char *dir, Py_ssize_t dn, const char *id, Py_ssize_t n, char *buf, char **out)
{
    *out = buf;
    if (1 + dn + n > KEY_MAX && !(*out = PyMem_Malloc(1 + dn + n))) {
        PyErr_NoMemory();
        return -1;
    }
    (*out)[0] = (char)dn;
    memcpy(*out + 1, dir, dn);
    memcpy(*out + 1 + dn, id, n);
    return 1 + dn + n;
}

/* A Python key (two str) as the table spells it, into *out (buf, or memory
 * the caller frees where it is longer): its length, or -1 with an error. */
static Py_ssize_t
key_of(PyObject *key, char *buf, char **out)
{
    Py_ssize_t dn, n;
    const char *dir, *id;

    if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2
        || !PyUnicode_Check(PyTuple_GET_ITEM(key, 0)) || !PyUnicode_Check(PyTuple_GET_ITEM(key, 1))) {
        PyErr_SetString(PyExc_TypeError, "OpenRequests keys are (direction, id) str pairs");
        return -1;
    }
    if (!(dir = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(key, 0), &dn))
        || !(id = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(key, 1), &n)))
        return -1;
    if (dn > 255) {
        PyErr_SetString(PyExc_ValueError, "OpenRequests: a direction of over 255 bytes");
        return -1;
    }
    return spell_key(dir, dn, id, n, buf, out);
}

/* An entry's value as a tuple (msg_index, method, ts): a new reference. */
static PyObject *
value_of(const Entry *e)
{
    if (e->value)
        return Py_NewRef(e->value);
    return Py_BuildValue("(LOL)", (long long)e->index, e->method, (long long)e->ts);
}

/* A value set in an entry: kept as its three parts where it is (int, str,
 * int) within int64, else as it is. 0, or -1 on error. */
static int
entry_set(Entry *e, PyObject *value)
{
    Py_CLEAR(e->method);
    Py_CLEAR(e->value);
    if (PyTuple_CheckExact(value) && PyTuple_GET_SIZE(value) == 3
        && PyLong_CheckExact(PyTuple_GET_ITEM(value, 0))
        && PyUnicode_CheckExact(PyTuple_GET_ITEM(value, 1))
        && PyLong_CheckExact(PyTuple_GET_ITEM(value, 2))) {
        int over = 0;
        long long index = PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(value, 0), &over);
        long long ts = over ? 0 : PyLong_AsLongLongAndOverflow(PyTuple_GET_ITEM(value, 2), &over);
        if (!over && !PyErr_Occurred()) {
            e->index = index;
            e->ts = ts;
            e->method = Py_NewRef(PyTuple_GET_ITEM(value, 1));
            return 0;
        }
        PyErr_Clear();
    }
    e->value = Py_NewRef(value);
    return 0;
}

static PyObject *
open_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "OpenRequests() takes no arguments");
        return NULL;
    }
    return type->tp_alloc(type, 0);
}

static int
open_clear(OpenRequests *t)
{
    for (Py_ssize_t j = 0; j < t->count; j++)
        if (t->entries[j].key)
            entry_clear(&t->entries[j]);
    t->count = t->live = t->used = 0;
    for (Py_ssize_t i = 0; i < t->nslots; i++)
        t->slots[i] = SLOT_EMPTY;
    return 0;
}

static int
open_traverse(OpenRequests *t, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(t));
    for (Py_ssize_t j = 0; j < t->count; j++) {
        Py_VISIT(t->entries[j].method);
        Py_VISIT(t->entries[j].value);
    }
    return 0;
}

static void
open_dealloc(OpenRequests *t)
{
    PyTypeObject *type = Py_TYPE(t);
    PyObject_GC_UnTrack(t);
    open_clear(t);
    PyMem_Free(t->entries);
    PyMem_Free(t->slots);
    type->tp_free((PyObject *)t);
    Py_DECREF(type);
}

static Py_ssize_t
open_len(OpenRequests *t)
{
    return t->live;
}

/* KeyError(key), as a dict raises it (a tuple key is one argument). */
static void
key_error(PyObject *key)
{
    PyObject *args = PyTuple_Pack(1, key);
    if (args) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
}

/* The entry of a Python key, or NULL (*err set where an error is). */
static Entry *
lookup(OpenRequests *t, PyObject *key, Py_ssize_t *slot, int *err)
{
    char buf[KEY_MAX], *k;
    Py_ssize_t n = key_of(key, buf, &k);

    *err = n < 0;
    if (n < 0)
        return NULL;
    Entry *e = table_get(t, k, n, hash_key(k, n), slot);
    if (k != buf)
        PyMem_Free(k);
    return e;
}

static int
open_contains(OpenRequests *t, PyObject *key)
{
    Py_ssize_t slot;
    int err;
    Entry *e = lookup(t, key, &slot, &err);
    return err ? -1 : e != NULL;
}

static PyObject *
open_getitem(OpenRequests *t, PyObject *key)
{
    Py_ssize_t slot;
    int err;
    Entry *e = lookup(t, key, &slot, &err);
    if (!e) {
        if (!err)
            key_error(key);
        return NULL;
    }
    return value_of(e);
}

static int
open_setitem(OpenRequests *t, PyObject *key, PyObject *value)
{
    char buf[KEY_MAX], *k;
    Py_ssize_t n = key_of(key, buf, &k), slot;
    int got = -1;

    if (n < 0)
        return -1;
    Py_hash_t hash = hash_key(k, n);
    if (!value) {
        if (table_get(t, k, n, hash, &slot)) {
            table_take(t, slot);
            got = 0;
        }
        else
            key_error(key);
    }
    else {
        Entry *e = table_put(t, k, n, hash);
        got = e ? entry_set(e, value) : -1;
    }
    if (k != buf)
        PyMem_Free(k);
    return got;
}

static PyObject *
open_pop(OpenRequests *t, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t slot;
    int err;

    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "pop expected 1 or 2 arguments");
        return NULL;
    }
    Entry *e = lookup(t, args[0], &slot, &err);
    if (!e) {
        if (err)
            return NULL;
        if (nargs == 2)
            return Py_NewRef(args[1]);
        key_error(args[0]);
        return NULL;
    }
    PyObject *value = value_of(e);
    if (value)
        table_take(t, slot);
    return value;
}

static PyObject *
open_items(OpenRequests *t, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = PyList_New(0);

    for (Py_ssize_t j = 0; out && j < t->count; j++) {
        const Entry *e = &t->entries[j];
        if (!e->key)
            continue;
        Py_ssize_t dn = (unsigned char)e->key[0];
        PyObject *item = Py_BuildValue("((s#s#)N)", e->key + 1, dn, e->key + 1 + dn,
                                       e->klen - 1 - dn, value_of(e));
        if (!item || PyList_Append(out, item) < 0)
            Py_CLEAR(out);
        Py_XDECREF(item);
    }
    return out;
}

static PyObject *
open_clear_method(OpenRequests *t, PyObject *Py_UNUSED(ignored))
{
    open_clear(t);
    Py_RETURN_NONE;
}

/* The table as a dict (a new reference), or NULL. */
static PyObject *
open_dict(OpenRequests *t)
{
    PyObject *items = open_items(t, NULL), *out = items ? PyDict_New() : NULL;

    for (Py_ssize_t j = 0; out && j < PyList_GET_SIZE(items); j++) {
        PyObject *item = PyList_GET_ITEM(items, j);
        if (PyDict_SetItem(out, PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1)) < 0)
            Py_CLEAR(out);
    }
    Py_XDECREF(items);
    return out;
}

/* == and != as a dict of the same items compares (with a dict, or another table). */
static PyObject *
open_richcompare(PyObject *self, PyObject *other, int op)
{
    if ((op != Py_EQ && op != Py_NE)
        || !(PyDict_Check(other) || Py_IS_TYPE(other, Py_TYPE(self))))
        Py_RETURN_NOTIMPLEMENTED;
    PyObject *mine = open_dict((OpenRequests *)self), *theirs = NULL, *got = NULL;
    if (mine) {
        theirs = PyDict_Check(other) ? Py_NewRef(other) : open_dict((OpenRequests *)other);
        if (theirs)
            got = PyObject_RichCompare(mine, theirs, op);
    }
    Py_XDECREF(mine);
    Py_XDECREF(theirs);
    return got;
}

static PyObject *
open_repr(PyObject *self)
{
    PyObject *d = open_dict((OpenRequests *)self);
    PyObject *out = d ? PyUnicode_FromFormat("OpenRequests(%R)", d) : NULL;
    Py_XDECREF(d);
    return out;
}

static PyMethodDef open_methods[] = {
    {"pop", (PyCFunction)(void (*)(void))open_pop, METH_FASTCALL,
     "pop(key[, default]): the value of key, taken out (as dict.pop)."},
    {"items", (PyCFunction)open_items, METH_NOARGS,
     "items(): a list of (key, value), in the order the keys came."},
    {"clear", (PyCFunction)open_clear_method, METH_NOARGS, "clear(): every request taken out."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot open_slots[] = {
    {Py_tp_doc, "OpenRequests(): the requests waiting for their answer, keyed (direction, id "
                "as JSON text) -> (msg_index, method, ts); a dict's len, in, [k], [k] = v, "
                "del, pop, items and clear, in the order the keys came."},
    {Py_tp_new, open_new},
    {Py_tp_dealloc, open_dealloc},
    {Py_tp_traverse, open_traverse},
    {Py_tp_clear, open_clear},
    {Py_tp_methods, open_methods},
    {Py_mp_length, open_len},
    {Py_mp_subscript, open_getitem},
    {Py_mp_ass_subscript, open_setitem},
    {Py_sq_contains, open_contains},
    {Py_tp_richcompare, open_richcompare},
    {Py_tp_repr, open_repr},
    {Py_tp_hash, PyObject_HashNotImplemented},
    {0, NULL},
};

static PyType_Spec open_spec = {
    "wspcap.app._speedups.OpenRequests", sizeof(OpenRequests), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, open_slots,
};

static PyTypeObject *OpenRequestsType;

/* No request answered, or no latency: wspcap.app.base.NO_ANSWER. */
#define NO_ANSWER INT64_MIN

/* A row's kind, as its code (wspcap.app.jsonrpc.KINDS, in this order). */
enum { K_REQUEST, K_NOTIFICATION, K_RESPONSE, K_ERROR };

/* The columns a call makes (see rpc_rows' doc, in this order): each a
 * buffer of this call's rows, handed over to its bytearray at the end. */
enum { O_POSITION, O_KIND, O_CHANNEL, O_CHANNEL_ENDS, O_CHANNEL_VALID, O_ID, O_ID_ENDS,
       O_ID_VALID, O_TEXT, O_ENDS, O_ANSWERS, O_COUNT };

/* The directions by their code (wspcap.app.base.DIRECTIONS). */
static const char *const DIRECTION_NAMES[2] = {"c2s", "s2c"};

/* The key of id (its JSON text: the token as it is spelled, see the module's
 * note) opened by the direction whose code is dir (0 or 1), or answered
 * from it where other (see spell_key). */
static Py_ssize_t
loop_key(int dir, const Tok *id, int other, char *buf, char **out)
{
    return spell_key(DIRECTION_NAMES[other ? !dir : dir], 3, (const char *)id->start,
                     id->end - id->start, buf, out);
}

/* A string token's value, UTF-8 (not as JSON: its escapes read). */
static int
put_value(Text *t, const Tok *tok)
{
    Py_ssize_t n = tok->end - tok->start;

    if (!tok->escaped)
        return put(t, tok->start + 1, n - 2);
    if (grow(t, n) < 0) /* (no escape is shorter than what it stands for) */
        return -1;
    t->len += decode_string(tok, t->data + t->len);
    return 0;
}

static ALWAYS_INLINE int
put_int64(Text *t, int64_t v)
{
    if (grow(t, sizeof v) < 0)
        return -1;
    memcpy(t->data + t->len, &v, sizeof v);
    t->len += sizeof v;
    return 0;
}

static ALWAYS_INLINE int
put_byte(Text *t, uint8_t v)
{
    if (grow(t, 1) < 0)
        return -1;
    t->data[t->len++] = (char)v;
    return 0;
}

/* Message i, taken: 1 (its row made: a row added to each column of out),
 * 0 (not taken), -1 on error. */
static int
take(Py_ssize_t i, const unsigned char *p, Py_ssize_t n, int dir, int64_t index, int64_t ts,
     OpenRequests *opened, Py_ssize_t max_open, Py_ssize_t *untracked, Text *out)
{
    Tok f[F_COUNT], e[E_COUNT];
    int secret = 0, loose = 0, spaced = 0, got = -1, wrote, kind;
    PyObject *method = NULL, *asked = NULL;
    char kbuf[KEY_MAX], *key = NULL;
    Py_ssize_t klen = 0, slot = -1, marks[O_COUNT];
    Py_hash_t hash = 0;
    Text *text = &out[O_TEXT];
    Tok *id = &f[F_ID];
    int64_t answer[2] = {NO_ANSWER, NO_ANSWER}; /* (request_msg, latency) */

    if (scan_rpc(p, n, f, &secret, &loose, &spaced) < 0)
        return 0;
    if (f[F_JSONRPC].type != T_STR || f[F_JSONRPC].end - f[F_JSONRPC].start != 5
        || memcmp(f[F_JSONRPC].start, "\"2.0\"", 5))
        return 0;
    if (!(id->type == T_NONE || id->type == T_INT || id->type == T_STR || id->type == T_NULL))
        return 0;
    if (id->type == T_STR && !id->printable)
        return 0;
    if (f[F_METHOD].type == T_NONE) {
        /* A response, or an error (an object with an integer code and a string message). */
        if (id->type == T_NONE || (f[F_RESULT].type == T_NONE) == (f[F_ERROR].type == T_NONE))
            return 0;
        if (f[F_ERROR].type != T_NONE
            && (f[F_ERROR].type != T_OBJ || error_members(&f[F_ERROR], e) < 0))
            return 0;
    }
    else {
        /* A request or a notification. */
        if (f[F_METHOD].type != T_STR || f[F_RESULT].type != T_NONE || f[F_ERROR].type != T_NONE)
            return 0;
        if (f[F_PARAMS].type != T_NONE && (
                (f[F_PARAMS].type != T_OBJ && f[F_PARAMS].type != T_ARR) || secret))
            return 0;
    }
    for (int c = 0; c < O_COUNT; c++)
        marks[c] = out[c].len;
    /* The open requests are keyed by the id's JSON text (as it is spelled
     * here: see the module's note). */
    if (id->type != T_NONE) {
        klen = loop_key(dir, id, f[F_METHOD].type == T_NONE, kbuf, &key);
        if (klen < 0)
            goto done;
        hash = hash_key(key, klen);
    }
    if (f[F_METHOD].type == T_NONE) {
        Entry *found = table_get(opened, key, klen, hash, &slot);
        if (found && found->value) {
            got = 0; /* (not what the loop keeps there: the column path says) */
            goto done;
        }
        if (found) {
            /* The runner's rule: the ns between the two messages, a time of 0
             * being unknown (both within int64, so is their difference). */
            int64_t now = ts;
            if (now < 0 || found->ts < 0 || found->index < 0) {
                got = 0; /* (out of what the tables hold: the column path says) */
                goto done;
            }
            answer[0] = found->index;
            if (now && found->ts)
                answer[1] = now - found->ts;
            asked = Py_NewRef(found->method);
        }
        if (PUT_LIT(text, "{\"id\":") < 0 || put(text, id->start, id->end - id->start) < 0)
            goto done;
        if (asked) {
            Py_ssize_t mn;
            const char *m;
            if (PUT_LIT(text, ",\"method\":") < 0)
                goto done;
            if ((wrote = put_str(text, asked)) != 0) {
                got = wrote > 0 ? 0 : -1;
                goto done;
            }
            /* (its UTF-8, there: put_str read it) */
            if (!(m = PyUnicode_AsUTF8AndSize(asked, &mn)) || put(&out[O_CHANNEL], m, mn) < 0)
                goto done;
        }
        if (f[F_ERROR].type == T_NONE) {
            kind = K_RESPONSE;
            if (PUT_LIT(text, ",\"result\":") < 0
                || put_compact(text, &f[F_RESULT], loose, spaced) < 0)
                goto done;
        }
        else {
            kind = K_ERROR;
            if (PUT_LIT(text, ",\"error\":") < 0
                || put_compact(text, &f[F_ERROR], loose, spaced) < 0
                || PUT_LIT(text, ",\"code\":") < 0
                || put(text, e[E_CODE].start, e[E_CODE].end - e[E_CODE].start) < 0
                || PUT_LIT(text, ",\"message\":") < 0
                || put_string(text, &e[E_MESSAGE]) < 0)
                goto done;
        }
        if (PUT_LIT(text, "}") < 0)
            goto done;
    }
    else {
        if (PUT_LIT(text, "{\"method\":") < 0
            || put_string(text, &f[F_METHOD]) < 0
            || put_value(&out[O_CHANNEL], &f[F_METHOD]) < 0)
            goto done;
        if (f[F_PARAMS].type != T_NONE
            && (PUT_LIT(text, ",\"params\":") < 0
                || put_compact(text, &f[F_PARAMS], loose, spaced) < 0))
            goto done;
        if (id->type != T_NONE
            && (PUT_LIT(text, ",\"id\":") < 0 || put(text, id->start, id->end - id->start) < 0))
            goto done;
        if (PUT_LIT(text, "}") < 0)
            goto done;
        kind = id->type == T_NONE ? K_NOTIFICATION : K_REQUEST;
    }
    /* The row's id: an integer's digits, a string's value, none for null. */
    if (id->type == T_INT && put(&out[O_ID], id->start, id->end - id->start) < 0)
        goto done;
    if (id->type == T_STR && put_value(&out[O_ID], id) < 0)
        goto done;
    if (put_int64(&out[O_POSITION], i) < 0 || put_byte(&out[O_KIND], (uint8_t)kind) < 0
        || put_int64(&out[O_CHANNEL_ENDS], out[O_CHANNEL].len) < 0
        || put_byte(&out[O_CHANNEL_VALID], kind != K_RESPONSE && kind != K_ERROR ? 1 : !!asked) < 0
        || put_int64(&out[O_ID_ENDS], out[O_ID].len) < 0
        || put_byte(&out[O_ID_VALID], id->type == T_INT || id->type == T_STR) < 0
        || put_int64(&out[O_ENDS], text->len) < 0 || put(&out[O_ANSWERS], answer, sizeof answer) < 0)
        goto done;
    /* The row made: its request opened, or taken. */
    if (f[F_METHOD].type == T_NONE) {
        if (asked)
            table_take(opened, slot);
    }
    else if (id->type != T_NONE) {
        Entry *open = NULL;
        if (opened->live < max_open || table_get(opened, key, klen, hash, &slot)) {
            if (!(method = method_of(&f[F_METHOD])) || !(open = table_put(opened, key, klen, hash)))
                goto done;
        }
        else
            ++*untracked;
        if (open) {
            Py_CLEAR(open->value);
            Py_XSETREF(open->method, Py_NewRef(method));
            open->index = index;
            open->ts = ts;
        }
    }
    got = 1;
done:
    if (got != 1) /* (no row: what it wrote goes too) */
        for (int c = 0; c < O_COUNT; c++)
            if (out[c].len > marks[c])
                out[c].len = marks[c];
    if (key && key != kbuf)
        PyMem_Free(key);
    Py_XDECREF(method);
    Py_XDECREF(asked);
    return got;
}

/* How many payloads ahead the loop asks for (see rpc_rows). */
#define PREFETCH 4

/* The rows a run read from its start makes room for at once (see rpc_rows). */
#define ROOM_ROWS (1 << 16)

PyDoc_STRVAR(rpc_rows_doc,
"rpc_rows(payloads, rows, start, stop, direction, msg_index, ts, opened, max_open,\n"
"         out[, max_bytes]) -> (next, untracked)\n\n"
"Make the rows of the JSON-RPC messages start:stop of a run as the column\n"
"path of wspcap.app.jsonrpc makes them. The run's columns are contiguous\n"
"arrays: rows int64 (where each message's payload is in payloads, a NumPy\n"
"object array: bytes are read, anything else stops the loop), direction\n"
"int8 (the index of the name in wspcap.app.base.DIRECTIONS), msg_index and\n"
"ts int64 (ts 0 where unknown). The rows are appended to the eleven bytearrays of the list out\n"
"(native byte order): position (int64, the message's), kind (uint8, the\n"
"index of its name in wspcap.app.jsonrpc.KINDS), channel (UTF-8 text),\n"
"channel_ends (int64: where each row's ends in channel), channel_valid\n"
"(uint8: 0 for none), id, id_ends, id_valid (as channel), text (the fields,\n"
"UTF-8 JSON), ends (int64, in text), answers (two int64 a row, request_msg\n"
"and latency, INT64_MIN for none); the ends count from the start of their\n"
"bytearray (what it held before stays). The requests are opened in and the\n"
"answers' taken from opened (an OpenRequests), keyed (direction, id as JSON\n"
"text) -> (msg_index, method, ts), up to max_open of them. The loop stops at\n"
"the first message it does not take (see the module's note; nor one of over\n"
"max_bytes bytes). Returns that message's position (stop: none) and the\n"
"requests not kept for max_open.");

/* A column of the run as a contiguous buffer of items of size bytes (an
 * object array's: pointers), at least stop long: 0, or -1 with an error. */
static int
column_of(PyObject *obj, Py_buffer *view, Py_ssize_t size, int objects, Py_ssize_t stop,
          const char *name)
{
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *format = view->format ? view->format : "B";
    if (view->itemsize != size || (objects && strcmp(format, "O") != 0)
        || (!objects && strchr("bBhHiIlLqQ", format[strlen(format) - 1]) == NULL)) {
        PyErr_Format(PyExc_TypeError, "rpc_rows: %s is not an array of the right type", name);
        PyBuffer_Release(view);
        return -1;
    }
    if (view->len / size < stop) {
        PyErr_SetString(PyExc_IndexError, "rpc_rows: start or stop out of the columns");
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static PyObject *
rpc_rows(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *payloads, *rows, *direction, *msg_index, *ts, *outs;
    OpenRequests *opened;
    Py_ssize_t start, stop, max_open, untracked = 0, i, max_bytes = PY_SSIZE_T_MAX;
    Py_buffer views[5];
    int held = 0, failed = 0;
    Text out[O_COUNT];

    if (!PyArg_ParseTuple(args, "OOnnOOOO!nO!|n:rpc_rows", &payloads, &rows, &start, &stop,
                          &direction, &msg_index, &ts, OpenRequestsType, &opened, &max_open,
                          &PyList_Type, &outs, &max_bytes))
        return NULL;
    if (start < 0 || stop < start) {
        PyErr_SetString(PyExc_IndexError, "rpc_rows: start or stop out of the columns");
        return NULL;
    }
    if (PyList_GET_SIZE(outs) != O_COUNT) {
        PyErr_SetString(PyExc_ValueError, "rpc_rows: out is not eleven bytearrays");
        return NULL;
    }
    for (int c = 0; c < O_COUNT; c++) {
        if (!PyByteArray_Check(PyList_GET_ITEM(outs, c))) {
            PyErr_SetString(PyExc_TypeError, "rpc_rows: out is not eleven bytearrays");
            return NULL;
        }
    }
    for (int c = 0; c < O_COUNT; c++)
        out[c] = text_into(PyList_GET_ITEM(outs, c));
    if (column_of(payloads, &views[0], sizeof(PyObject *), 1, 0, "payloads") < 0
        || (held = 1, column_of(rows, &views[1], 8, 0, stop, "rows") < 0)
        || (held = 2, column_of(direction, &views[2], 1, 0, stop, "direction") < 0)
        || (held = 3, column_of(msg_index, &views[3], 8, 0, stop, "msg_index") < 0)
        || (held = 4, column_of(ts, &views[4], 8, 0, stop, "ts") < 0)) {
        for (int c = 0; c < held; c++)
            PyBuffer_Release(&views[c]);
        return NULL;
    }
    if (start == 0) {
        /* A run read from its start: room made at once for its rows (up to
         * ROOM_ROWS) as most runs have them (the columns of a size a row
         * exactly; a row's text guessed), not grown by doublings, each a copy
         * of what it holds. A run read again after a message the loop did
         * not take makes no room: it may stop at the next one, and room made
         * and cut again each time cost more than it saved. */
        static const Py_ssize_t per_row[O_COUNT] = {
            [O_POSITION] = 8, [O_KIND] = 1, [O_CHANNEL] = 16, [O_CHANNEL_ENDS] = 8,
            [O_CHANNEL_VALID] = 1, [O_ID] = 16, [O_ID_ENDS] = 8, [O_ID_VALID] = 1,
            [O_TEXT] = 128, [O_ENDS] = 8, [O_ANSWERS] = 16};
        Py_ssize_t rows_ahead = stop < ROOM_ROWS ? stop : ROOM_ROWS;
        for (int c = 0; c < O_COUNT; c++)
            if (grow(&out[c], rows_ahead * per_row[c]) < 0) {
                failed = 1;
                break;
            }
    }
    PyObject *const *items = (PyObject *const *)views[0].buf;
    const Py_ssize_t count = views[0].len / (Py_ssize_t)sizeof(PyObject *);
    const int64_t *at = (const int64_t *)views[1].buf;
    const int8_t *dirs = (const int8_t *)views[2].buf;
    const int64_t *indexes = (const int64_t *)views[3].buf, *times = (const int64_t *)views[4].buf;
    for (i = start; i < stop && !failed; i++) {
        if (at[i] < 0 || at[i] >= count) {
            PyErr_SetString(PyExc_IndexError, "rpc_rows: a row out of the payloads");
            failed = 1;
            break;
        }
        PyObject *payload = items[at[i]];
#if defined(__GNUC__)
        /* The payloads lie where their reading put them, each a miss of the
         * caches (a quarter of the loop's time): the next ones asked for
         * ahead, their header and first 200 bytes or so. */
        if (i + PREFETCH < stop && at[i + PREFETCH] >= 0 && at[i + PREFETCH] < count) {
            const char *ahead = (const char *)items[at[i + PREFETCH]];
            __builtin_prefetch(ahead);
            __builtin_prefetch(ahead + 64);
            __builtin_prefetch(ahead + 128);
            __builtin_prefetch(ahead + 192);
        }
#endif
        if (!payload || !PyBytes_Check(payload) || PyBytes_GET_SIZE(payload) > max_bytes
            || (dirs[i] != 0 && dirs[i] != 1))
            break;
        /* (the arrays may not change under take: it calls no Python code) */
        int got = take(i, (const unsigned char *)PyBytes_AS_STRING(payload),
                       PyBytes_GET_SIZE(payload), dirs[i], indexes[i], times[i], opened,
                       max_open, &untracked, out);
        if (got < 0) {
            failed = 1;
            break;
        }
        if (!got)
            break;
    }
    for (int c = 0; c < 5; c++)
        PyBuffer_Release(&views[c]);
    /* Each bytearray cut to what was written (the ends count from its
     * start: what it held before stays). */
    for (int c = 0; c < O_COUNT; c++)
        if (text_done(&out[c]) < 0)
            failed = 1;
    return failed ? NULL : Py_BuildValue("nn", i, untracked);
}

static PyMethodDef methods[] = {
    {"rpc_rows", rpc_rows, METH_VARARGS, rpc_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "wspcap.app._speedups",
    "Compiled loops of the application decoding's column path (see wspcap.app.jsonrpc, "
    "wspcap.app.runner).",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    for (int c = 0x20; c < 0x7F; c++)
        PLAIN[c] = c != '"' && c != '\\';
    for (int c = 0; c < 256; c++)
        for (int w = 0; SECRET_WORDS[w] && !SECRET_START[c]; w++)
            if ((unsigned char)SECRET_WORDS[w][0] == (c | 0x20))
                SECRET_START[c] = (unsigned char)(w + 1);
    if (!(OpenRequestsType = (PyTypeObject *)PyType_FromSpec(&open_spec)))
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddObjectRef(m, "OpenRequests", (PyObject *)OpenRequestsType) < 0)
        Py_CLEAR(m);
    return m;
}
