/*
 * Request bodies and query strings. The JSON reader here is written by hand instead of
 * calling json_loadb() because the contract cannot be met on top of jansson's parser:
 * jansson keeps one value per exact key, so in {"username":"a","Username":"b","username":"c"}
 * the third pair overwrites the first in place and the object no longer says that "c" came
 * after "b"; folding such an object afterwards gives "b", where the rule (the Go decoder's)
 * wants the last occurrence, "c". Folding while reading, in input order, gets it right.
 * jansson's parser would also refuse integers beyond int64 outright (we keep them as reals
 * so they fail as a wrong format) and allows nesting far deeper than we want.
 * jansson is used only to build the resulting values.
 *
 * Everything runs in one pass over the input, with recursion bounded by SK_BODY_MAX_DEPTH.
 */
#include "api/body.h"

#include <assert.h>
#include <float.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

typedef struct {
    const unsigned char *pos;
    const unsigned char *end;
    /* Decoded strings are written here as a stack: an object key stays on it while its
     * value is read. Every decoded string is no longer than its source text and the strings
     * on the stack come from disjoint parts of the input, so `len + 1` bytes always do. */
    char *scratch;
    size_t scratch_top;
    size_t scratch_cap;
} reader_t;

static json_t *read_value(reader_t *reader, int depth);

static void skip_whitespace(reader_t *reader)
{
    while (reader->pos < reader->end) {
        unsigned char c = *reader->pos;
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            break;
        }
        reader->pos++;
    }
}

/* The value of the hex digit `c`, or -1 when `c` is none. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Reads the 4 hex digits of a \u escape at reader->pos; -1 when they are not there. */
static long read_hex4(reader_t *reader)
{
    if (reader->end - reader->pos < 4) {
        return -1;
    }
    long code = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_value(reader->pos[i]);
        if (digit < 0) {
            return -1;
        }
        code = code * 16 + digit;
    }
    reader->pos += 4;
    return code;
}

static size_t encode_utf8(unsigned long code, char *out)
{
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/*
 * Length of the well-formed UTF-8 sequence starting at `s` (its lead byte >= 0x80), or 0.
 * The ranges are those of Unicode table 3-7: they exclude overlong forms, surrogates and
 * code points beyond U+10FFFF.
 */
static size_t utf8_sequence_length(const unsigned char *s, const unsigned char *end)
{
    size_t avail = (size_t)(end - s);
    unsigned char lead = s[0];
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    size_t length;

    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        if (lead == 0xE0) {
            low = 0xA0;
        } else if (lead == 0xED) {
            high = 0x9F;
        }
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        if (lead == 0xF0) {
            low = 0x90;
        } else if (lead == 0xF4) {
            high = 0x8F;
        }
    } else {
        return 0;
    }
    if (avail < length || s[1] < low || s[1] > high) {
        return 0;
    }
    for (size_t i = 2; i < length; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return length;
}

/*
 * Reads a string whose opening quote is at reader->pos and pushes its decoded bytes on the
 * scratch stack; *offset and *len say where they are. Returns 0, or SK_EINVAL when
 * malformed.
 */
static int read_string(reader_t *reader, size_t *offset, size_t *len)
{
    assert(reader->pos < reader->end && *reader->pos == '"');
    reader->pos++;
    char *out = reader->scratch + reader->scratch_top;
    size_t n = 0;
    /* The bound that makes all writes below safe, see reader_t. */
    assert(reader->scratch_top + (size_t)(reader->end - reader->pos) <= reader->scratch_cap);

    while (reader->pos < reader->end) {
        unsigned char c = *reader->pos;
        if (c == '"') {
            reader->pos++;
            *offset = reader->scratch_top;
            *len = n;
            reader->scratch_top += n;
            return 0;
        }
        if (c < 0x20) {
            return SK_EINVAL;
        }
        if (c < 0x80 && c != '\\') {
            out[n++] = (char)c;
            reader->pos++;
            continue;
        }
        if (c >= 0x80) {
            size_t length = utf8_sequence_length(reader->pos, reader->end);
            if (length == 0) {
                return SK_EINVAL;
            }
            memcpy(out + n, reader->pos, length);
            n += length;
            reader->pos += length;
            continue;
        }
        reader->pos++;
        if (reader->pos >= reader->end) {
            return SK_EINVAL;
        }
        c = *reader->pos++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            out[n++] = (char)c;
            break;
        case 'b':
            out[n++] = '\b';
            break;
        case 'f':
            out[n++] = '\f';
            break;
        case 'n':
            out[n++] = '\n';
            break;
        case 'r':
            out[n++] = '\r';
            break;
        case 't':
            out[n++] = '\t';
            break;
        case 'u': {
            long code = read_hex4(reader);
            if (code < 0 || (code >= 0xDC00 && code <= 0xDFFF)) {
                return SK_EINVAL;
            }
            if (code >= 0xD800 && code <= 0xDBFF) {
                if (reader->end - reader->pos < 2 || reader->pos[0] != '\\' ||
                    reader->pos[1] != 'u') {
                    return SK_EINVAL;
                }
                reader->pos += 2;
                long low = read_hex4(reader);
                if (low < 0xDC00 || low > 0xDFFF) {
                    return SK_EINVAL;
                }
                code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
            }
            n += encode_utf8((unsigned long)code, out + n);
            break;
        }
        default:
            return SK_EINVAL;
        }
    }
    return SK_EINVAL;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Scales a mantissa by a power of ten, staying finite: the value of a JSON real only needs
 * to be roughly right, since sk_body_int() refuses every real anyway. */
static double scale_decimal(double mantissa, long exponent)
{
    while (exponent > 0 && mantissa != 0) {
        if (mantissa > DBL_MAX / 10) {
            return DBL_MAX;
        }
        mantissa *= 10;
        exponent--;
    }
    while (exponent < 0 && mantissa != 0) {
        mantissa /= 10;
        exponent++;
    }
    return mantissa;
}

/* A number by the RFC 8259 grammar: an integer literal within int64 becomes a JSON integer,
 * anything else a JSON real. */
static json_t *read_number(reader_t *reader)
{
    const unsigned char *p = reader->pos;
    const unsigned char *end = reader->end;
    bool negative = false;
    bool is_integer = true;
    /* Accumulated as a negative number so that INT64_MIN fits. */
    int64_t integer = 0;
    double mantissa = 0;
    long exponent = 0;
    int significant = 0;

    if (p < end && *p == '-') {
        negative = true;
        p++;
    }
    if (p >= end || !is_digit(*p)) {
        return NULL;
    }
    if (*p == '0') {
        p++;
    } else {
        while (p < end && is_digit(*p)) {
            int digit = *p - '0';
            if (integer < (INT64_MIN + digit) / 10) {
                is_integer = false;
            } else {
                integer = integer * 10 - digit;
            }
            if (significant < 19) {
                mantissa = mantissa * 10 + digit;
                significant++;
            } else {
                exponent++;
            }
            p++;
        }
    }
    if (p < end && *p == '.') {
        is_integer = false;
        p++;
        if (p >= end || !is_digit(*p)) {
            return NULL;
        }
        while (p < end && is_digit(*p)) {
            if (mantissa == 0 && *p == '0') {
                exponent--;
            } else if (significant < 19) {
                mantissa = mantissa * 10 + (*p - '0');
                significant++;
                exponent--;
            }
            p++;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        is_integer = false;
        p++;
        bool exponent_negative = false;
        if (p < end && (*p == '+' || *p == '-')) {
            exponent_negative = *p == '-';
            p++;
        }
        if (p >= end || !is_digit(*p)) {
            return NULL;
        }
        long written = 0;
        while (p < end && is_digit(*p)) {
            /* Far beyond any double's range; clamping keeps the arithmetic defined. */
            if (written < 100000) {
                written = written * 10 + (*p - '0');
            }
            p++;
        }
        exponent += exponent_negative ? -written : written;
    }
    reader->pos = p;

    if (is_integer) {
        if (!negative) {
            if (integer == INT64_MIN) {
                return json_real(scale_decimal(mantissa, exponent));
            }
            integer = -integer;
        }
        return json_integer(integer);
    }
    double value = scale_decimal(mantissa, exponent);
    return json_real(negative ? -value : value);
}

static bool read_literal(reader_t *reader, const char *word)
{
    size_t length = strlen(word);
    if ((size_t)(reader->end - reader->pos) < length || memcmp(reader->pos, word, length) != 0) {
        return false;
    }
    reader->pos += length;
    return true;
}

/* An object whose '{' is at reader->pos, at nesting level `depth` (the body itself is 1).
 * With `fold`, keys are folded to ASCII lower case, so the last of "Name" and "name" wins. */
static json_t *read_object(reader_t *reader, int depth, bool fold)
{
    if (depth > SK_BODY_MAX_DEPTH) {
        return NULL;
    }
    json_t *object = json_object();
    if (object == NULL) {
        return NULL;
    }
    reader->pos++;
    skip_whitespace(reader);
    if (reader->pos < reader->end && *reader->pos == '}') {
        reader->pos++;
        return object;
    }
    for (;;) {
        size_t key_offset;
        size_t key_len;
        if (reader->pos >= reader->end || *reader->pos != '"' ||
            read_string(reader, &key_offset, &key_len) != 0) {
            goto fail;
        }
        if (fold) {
            char *key = reader->scratch + key_offset;
            for (size_t i = 0; i < key_len; i++) {
                if (key[i] >= 'A' && key[i] <= 'Z') {
                    key[i] = (char)(key[i] - 'A' + 'a');
                }
            }
        }
        skip_whitespace(reader);
        if (reader->pos >= reader->end || *reader->pos != ':') {
            goto fail;
        }
        reader->pos++;
        skip_whitespace(reader);
        json_t *value = read_value(reader, depth);
        if (value == NULL) {
            goto fail;
        }
        /* Replaces an earlier value of the same key: the last occurrence wins. */
        if (json_object_setn_new_nocheck(object, reader->scratch + key_offset, key_len, value) !=
            0) {
            goto fail;
        }
        reader->scratch_top = key_offset;
        skip_whitespace(reader);
        if (reader->pos >= reader->end) {
            goto fail;
        }
        if (*reader->pos == '}') {
            reader->pos++;
            return object;
        }
        if (*reader->pos != ',') {
            goto fail;
        }
        reader->pos++;
        skip_whitespace(reader);
    }
fail:
    json_decref(object);
    return NULL;
}

static json_t *read_array(reader_t *reader, int depth)
{
    if (depth > SK_BODY_MAX_DEPTH) {
        return NULL;
    }
    json_t *array = json_array();
    if (array == NULL) {
        return NULL;
    }
    reader->pos++;
    skip_whitespace(reader);
    if (reader->pos < reader->end && *reader->pos == ']') {
        reader->pos++;
        return array;
    }
    for (;;) {
        json_t *value = read_value(reader, depth);
        if (value == NULL || json_array_append_new(array, value) != 0) {
            goto fail;
        }
        skip_whitespace(reader);
        if (reader->pos >= reader->end) {
            goto fail;
        }
        if (*reader->pos == ']') {
            reader->pos++;
            return array;
        }
        if (*reader->pos != ',') {
            goto fail;
        }
        reader->pos++;
        skip_whitespace(reader);
    }
fail:
    json_decref(array);
    return NULL;
}

/* A value starting at reader->pos, inside a container at nesting level `depth`. */
static json_t *read_value(reader_t *reader, int depth)
{
    if (reader->pos >= reader->end) {
        return NULL;
    }
    switch (*reader->pos) {
    case '{':
        return read_object(reader, depth + 1, false);
    case '[':
        return read_array(reader, depth + 1);
    case '"': {
        size_t offset;
        size_t len;
        if (read_string(reader, &offset, &len) != 0) {
            return NULL;
        }
        reader->scratch_top = offset;
        /* Checked: read_string() let only well-formed UTF-8 through. */
        return json_stringn_nocheck(reader->scratch + offset, len);
    }
    case 't':
        return read_literal(reader, "true") ? json_true() : NULL;
    case 'f':
        return read_literal(reader, "false") ? json_false() : NULL;
    case 'n':
        return read_literal(reader, "null") ? json_null() : NULL;
    default:
        return read_number(reader);
    }
}

json_t *sk_body_parse_object(const char *data, size_t len)
{
    if (data == NULL) {
        return NULL;
    }
    reader_t reader = {
        .pos = (const unsigned char *)data,
        .end = (const unsigned char *)data + len,
        .scratch = malloc(len + 1),
        .scratch_top = 0,
        .scratch_cap = len + 1,
    };
    if (reader.scratch == NULL) {
        return NULL;
    }
    json_t *object = NULL;
    skip_whitespace(&reader);
    if (reader.pos < reader.end && *reader.pos == '{') {
        object = read_object(&reader, 1, true);
    }
    if (object != NULL) {
        skip_whitespace(&reader);
        if (reader.pos != reader.end) {
            json_decref(object);
            object = NULL;
        }
    }
    free(reader.scratch);
    return object;
}

int sk_body_string(json_t *object, const char *folded_name, const char **out, size_t *len)
{
    json_t *value = json_object_get(object, folded_name);
    if (!json_is_string(value)) {
        return SK_EINVAL;
    }
    *out = json_string_value(value);
    *len = json_string_length(value);
    return 0;
}

/*
 * Parses ^-?[0-9]+$ from `text`. Returns 0 and sets *out when the value fits in int64;
 * 1 when the digits are well formed but the value does not fit (*out is then INT64_MAX or
 * INT64_MIN, by sign); SK_EINVAL when the text is not of that form.
 */
static int parse_decimal(const char *text, size_t len, int64_t *out)
{
    size_t i = 0;
    bool negative = false;
    if (i < len && text[i] == '-') {
        negative = true;
        i++;
    }
    if (i == len) {
        return SK_EINVAL;
    }
    /* Accumulated as a negative number so that INT64_MIN fits. */
    int64_t value = 0;
    bool overflow = false;
    for (; i < len; i++) {
        if (!is_digit((unsigned char)text[i])) {
            return SK_EINVAL;
        }
        int digit = text[i] - '0';
        if (value < (INT64_MIN + digit) / 10) {
            overflow = true;
        } else {
            value = value * 10 - digit;
        }
    }
    if (!negative && value == INT64_MIN) {
        overflow = true;
    }
    if (overflow) {
        *out = negative ? INT64_MIN : INT64_MAX;
        return 1;
    }
    *out = negative ? value : -value;
    return 0;
}

int sk_body_int(json_t *value, int64_t min, int64_t max, int64_t *out)
{
    int64_t number;
    if (json_is_integer(value)) {
        number = json_integer_value(value);
    } else if (json_is_string(value)) {
        if (parse_decimal(json_string_value(value), json_string_length(value), &number) != 0) {
            return SK_EINVAL;
        }
    } else {
        return SK_EINVAL;
    }
    if (number < min || number > max) {
        return SK_EINVAL;
    }
    *out = number;
    return 0;
}

/* Reads exactly `count` decimal digits at text[*pos]; -1 when they are not all there. */
static int read_fixed_digits(const char *text, size_t len, size_t *pos, int count)
{
    int value = 0;
    for (int i = 0; i < count; i++) {
        if (*pos >= len || !is_digit((unsigned char)text[*pos])) {
            return -1;
        }
        value = value * 10 + (text[*pos] - '0');
        (*pos)++;
    }
    return value;
}

static bool expect_char(const char *text, size_t len, size_t *pos, char c)
{
    if (*pos >= len || text[*pos] != c) {
        return false;
    }
    (*pos)++;
    return true;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t year, int month, int day)
{
    year -= month <= 2;
    int64_t era = (year >= 0 ? year : year - 399) / 400;
    int64_t year_of_era = year - era * 400;
    int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/*
 * RFC 3339 date-time ("YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)", 'T' and 'Z' in either
 * case) to Unix seconds; the fraction is truncated. A leap second (:60) is refused, as Go's
 * time.Parse does, since Unix time cannot name it. Returns 0 or SK_EINVAL.
 */
static int parse_rfc3339(const char *text, size_t len, int64_t *out)
{
    size_t pos = 0;
    int year = read_fixed_digits(text, len, &pos, 4);
    if (year < 0 || !expect_char(text, len, &pos, '-')) {
        return SK_EINVAL;
    }
    int month = read_fixed_digits(text, len, &pos, 2);
    if (month < 1 || month > 12 || !expect_char(text, len, &pos, '-')) {
        return SK_EINVAL;
    }
    int day = read_fixed_digits(text, len, &pos, 2);
    if (day < 1 || day > days_in_month(year, month)) {
        return SK_EINVAL;
    }
    if (pos >= len || (text[pos] != 'T' && text[pos] != 't')) {
        return SK_EINVAL;
    }
    pos++;
    int hour = read_fixed_digits(text, len, &pos, 2);
    if (hour < 0 || hour > 23 || !expect_char(text, len, &pos, ':')) {
        return SK_EINVAL;
    }
    int minute = read_fixed_digits(text, len, &pos, 2);
    if (minute < 0 || minute > 59 || !expect_char(text, len, &pos, ':')) {
        return SK_EINVAL;
    }
    int second = read_fixed_digits(text, len, &pos, 2);
    if (second < 0 || second > 59) {
        return SK_EINVAL;
    }
    if (pos < len && text[pos] == '.') {
        pos++;
        if (pos >= len || !is_digit((unsigned char)text[pos])) {
            return SK_EINVAL;
        }
        while (pos < len && is_digit((unsigned char)text[pos])) {
            pos++;
        }
    }
    if (pos >= len) {
        return SK_EINVAL;
    }
    int offset_seconds = 0;
    if (text[pos] == 'Z' || text[pos] == 'z') {
        pos++;
    } else if (text[pos] == '+' || text[pos] == '-') {
        int sign = text[pos] == '-' ? -1 : 1;
        pos++;
        int offset_hour = read_fixed_digits(text, len, &pos, 2);
        if (offset_hour < 0 || offset_hour > 23 || !expect_char(text, len, &pos, ':')) {
            return SK_EINVAL;
        }
        int offset_minute = read_fixed_digits(text, len, &pos, 2);
        if (offset_minute < 0 || offset_minute > 59) {
            return SK_EINVAL;
        }
        offset_seconds = sign * (offset_hour * 3600 + offset_minute * 60);
    } else {
        return SK_EINVAL;
    }
    if (pos != len) {
        return SK_EINVAL;
    }
    int64_t seconds_of_day = (int64_t)hour * 3600 + (int64_t)minute * 60 + second;
    *out = days_from_civil(year, month, day) * 86400 + seconds_of_day - offset_seconds;
    return 0;
}

int sk_body_time(json_t *value, int64_t *out)
{
    if (value == NULL || json_is_null(value)) {
        return 0;
    }
    int64_t seconds;
    if (json_is_integer(value)) {
        return sk_body_int(value, 0, INT64_MAX, out) == 0 ? 1 : SK_EINVAL;
    }
    if (!json_is_string(value)) {
        return SK_EINVAL;
    }
    const char *text = json_string_value(value);
    size_t len = json_string_length(value);
    int status = parse_decimal(text, len, &seconds);
    if (status == 1) {
        return SK_EINVAL;
    }
    if (status != 0 && parse_rfc3339(text, len, &seconds) != 0) {
        return SK_EINVAL;
    }
    /* Times before the epoch are refused in both forms, so callers see one range. */
    if (seconds < 0) {
        return SK_EINVAL;
    }
    *out = seconds;
    return 1;
}

/*
 * Decodes one byte of a query component at text[*pos] (%XX, '+' as a space, or itself),
 * as Go's url.ParseQuery does. Returns the byte, or -1 for a malformed escape.
 */
static int next_query_byte(const char *text, size_t len, size_t *pos)
{
    unsigned char c = (unsigned char)text[*pos];
    if (c == '+') {
        (*pos)++;
        return ' ';
    }
    if (c != '%') {
        (*pos)++;
        return c;
    }
    if (len - *pos < 3) {
        return -1;
    }
    int high = hex_value((unsigned char)text[*pos + 1]);
    int low = hex_value((unsigned char)text[*pos + 2]);
    if (high < 0 || low < 0) {
        return -1;
    }
    *pos += 3;
    return high * 16 + low;
}

/* Whether the query component text[0..len) decodes to exactly `word`. */
static bool query_component_is(const char *text, size_t len, const char *word)
{
    size_t pos = 0;
    size_t matched = 0;
    size_t word_len = strlen(word);
    while (pos < len) {
        int c = next_query_byte(text, len, &pos);
        if (c < 0 || matched >= word_len || c != (unsigned char)word[matched]) {
            return false;
        }
        matched++;
    }
    return matched == word_len;
}

/* The page number from a decoded-on-the-fly value, by the rules of sk_body_query_page():
 * 0 or SK_EINVAL. */
static int page_from_value(const char *text, size_t len, int64_t *page)
{
    if (len == 0) {
        *page = 1;
        return 0;
    }
    size_t pos = 0;
    bool negative = false;
    bool any_digit = false;
    bool overflow = false;
    int64_t value = 0;
    while (pos < len) {
        int c = next_query_byte(text, len, &pos);
        if (c == '-' && !negative && !any_digit) {
            negative = true;
            continue;
        }
        if (c < '0' || c > '9') {
            return SK_EINVAL;
        }
        any_digit = true;
        if (value > (INT64_MAX - (c - '0')) / 10) {
            overflow = true;
        } else {
            value = value * 10 + (c - '0');
        }
    }
    if (!any_digit) {
        return SK_EINVAL;
    }
    if (negative || value <= 1) {
        *page = 1;
    } else {
        *page = overflow ? INT64_MAX : value;
    }
    return 0;
}

/* The first parameter of the query named `name`: returns 1 with its raw value (empty when
 * it has no '='), or 0 when there is none. */
static int find_query_param(const char *query, size_t query_len, const char *name,
                            const char **value, size_t *value_len)
{
    size_t start = 0;
    while (query != NULL && start < query_len) {
        const char *param = query + start;
        const char *amp = memchr(param, '&', query_len - start);
        size_t param_len = amp != NULL ? (size_t)(amp - param) : query_len - start;
        const char *equals = memchr(param, '=', param_len);
        size_t key_len = equals != NULL ? (size_t)(equals - param) : param_len;
        if (query_component_is(param, key_len, name)) {
            *value = equals != NULL ? equals + 1 : param + param_len;
            *value_len = equals != NULL ? param_len - key_len - 1 : 0;
            return 1;
        }
        start += param_len + 1;
    }
    return 0;
}

int sk_body_query_page(const char *query, size_t query_len, int64_t *page)
{
    const char *value;
    size_t value_len;
    if (!find_query_param(query, query_len, "page", &value, &value_len)) {
        *page = 1;
        return 0;
    }
    return page_from_value(value, value_len, page);
}

int sk_body_query_string(const char *query, size_t query_len, const char *name, char *out,
                         size_t out_size, size_t *len)
{
    const char *value;
    size_t value_len;
    *len = 0;
    if (out_size != 0)
        out[0] = '\0';
    if (!find_query_param(query, query_len, name, &value, &value_len))
        return 0;
    size_t pos = 0, used = 0;
    while (pos < value_len) {
        int c = next_query_byte(value, value_len, &pos);
        if (c < 0 || used + 1 >= out_size) {
            *len = 0;
            if (out_size != 0)
                out[0] = '\0';
            return SK_EINVAL;
        }
        out[used++] = (char)c;
    }
    if (out_size == 0)
        return SK_EINVAL;
    out[used] = '\0';
    *len = used;
    return 1;
}
