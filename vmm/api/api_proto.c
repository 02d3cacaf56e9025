/* The control API's wire codec (docs/api.md). The request parser faces bytes from any process
 * that can open the socket: it bounds the input first, checks the raw bytes itself (NUL, lines,
 * UTF-8, control characters, quotes json-c would take, duplicate keys json-c would merge), and
 * then makes one bounded, strict json-c call. */
#include "vmm/api/api_proto.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static const char *const op_names[API_OP_COUNT] = {
    [API_OP_STATE] = "state",	[API_OP_START] = "start",     [API_OP_PAUSE] = "pause",
    [API_OP_RESUME] = "resume", [API_OP_STOP] = "stop",	      [API_OP_SIGNAL] = "signal",
    [API_OP_EXEC] = "exec",	[API_OP_METRICS] = "metrics", [API_OP_SNAPSHOT] = "snapshot",
};
#define OP_LIST "state, start, pause, resume, stop, signal, exec, metrics, snapshot"

const char *api_op_name(enum api_op op)
{
	if ((unsigned)op >= API_OP_COUNT)
		return NULL;
	return op_names[op];
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 (overlong forms, surrogates and
 * code points past U+10FFFF are invalid). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned char lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return len;
}

/* s[0..n) as a short printable quotation for an error line: printable ASCII but '"' and '\'
 * kept, everything else as \xNN, cut after 24 input bytes with "...". */
static const char *quote(char out[128], const char *s, size_t n)
{
	size_t at = 0;
	size_t i;
	for (i = 0; i < n && i < 24; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
			out[at++] = (char)c;
		else
			at += (size_t)snprintf(out + at, 5, "\\x%02x", c);
	}
	if (i < n)
		memcpy(out + at, "...", 3), at += 3;
	out[at] = '\0';
	return out;
}

/* How a value of the wrong type or range reads in an error line: numbers, booleans and null as
 * written, other types by name. */
static const char *describe(char out[128], struct json_object *v)
{
	switch (json_object_get_type(v)) {
	case json_type_string:
		return "a string";
	case json_type_object:
		return "an object";
	case json_type_array:
		return "an array";
	case json_type_null:
		return "null";
	default: {
		const char *s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN);
		return s ? quote(out, s, strlen(s)) : "a value";
	}
	}
}

/* The raw bytes of a request (its '\n' removed): what json-c would take but JSON or this
 * protocol does not. Counts the top-level object's members (a ':' at depth 1 outside strings)
 * so that duplicates, which json-c merges, show. */
static int check_bytes(const char *s, size_t n, unsigned *members, struct verr *e)
{
	const unsigned char *u = (const unsigned char *)s;
	bool in_str = false, esc = false;
	unsigned depth = 0;
	*members = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = u[i];
		if (c == '\0')
			return verr_set(
			    e, -EINVAL,
			    "byte %zu of the request is a NUL: send one line of JSON text", i);
		if (c == '\n')
			return verr_set(
			    e, -EINVAL,
			    "byte %zu of the request is a newline: send one request per "
			    "line, ended by its only newline",
			    i);
		if (c >= 0x80) {
			size_t k = utf8_seq(u + i, n - i);
			if (!k)
				return verr_set(
				    e, -EINVAL,
				    "byte %zu of the request (0x%02x) is not valid UTF-8: "
				    "send UTF-8 text",
				    i, c);
			if (!in_str)
				return verr_set(e, -EINVAL,
						"byte %zu of the request is a non-ASCII character "
						"outside a string: send plain JSON",
						i);
			esc = false;
			i += k - 1;
			continue;
		}
		if (in_str) {
			if (esc) {
				esc = false;
				if (c == 'u' && n - i > 4 && memcmp(s + i + 1, "0000", 4) == 0)
					return verr_set(
					    e, -EINVAL,
					    "byte %zu of the request starts a \\u0000 "
					    "escape: strings cannot hold NUL characters",
					    i - 1);
			} else if (c == '\\') {
				esc = true;
			} else if (c == '"') {
				in_str = false;
			} else if (c < 0x20 || c == 0x7f) {
				return verr_set(
				    e, -EINVAL,
				    "byte %zu of the request is a raw control character "
				    "(0x%02x) in a string: write it as an escape (\\t, "
				    "\\u001b...)",
				    i, c);
			}
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			break;
		case '\'':
			return verr_set(
			    e, -EINVAL,
			    "byte %zu of the request is a single quote: JSON strings take "
			    "double quotes, e.g. {\"op\":\"state\"}",
			    i);
		case '{':
		case '[':
			depth++;
			break;
		case '}':
		case ']':
			if (depth)
				depth--;
			break;
		case ':':
			if (depth == 1)
				(*members)++;
			break;
		case ' ':
		case '\t':
		case '\r':
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				return verr_set(e, -EINVAL,
						"byte %zu of the request is a control character "
						"(0x%02x): send one line of JSON text",
						i, c);
		}
	}
	return 0;
}

/* The top-level object has fewer keys than members: names the first key given twice. */
static int duplicate_key(const char *s, size_t n, struct verr *e)
{
	struct json_object *seen = json_object_new_object();
	if (!seen)
		return verr_set(e, -ENOMEM, "out of memory");
	bool in_str = false, esc = false;
	unsigned depth = 0;
	size_t key_at = 0, key_end = 0; /* the last string token that started at depth 1 */
	int ret = verr_set(e, -EINVAL, "a key is given twice: give each key once");
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (c == '\\')
				esc = true;
			else if (c == '"') {
				in_str = false;
				key_end = i + 1;
			}
			continue;
		}
		if (c == '"') {
			in_str = true;
			if (depth == 1)
				key_at = i;
		} else if (c == '{' || c == '[') {
			depth++;
		} else if ((c == '}' || c == ']') && depth) {
			depth--;
		} else if (c == ':' && depth == 1 && key_end > key_at) {
			struct json_tokener *tok = json_tokener_new_ex(1);
			if (!tok)
				break;
			struct json_object *k =
			    json_tokener_parse_ex(tok, s + key_at, (int)(key_end - key_at));
			json_tokener_free(tok);
			const char *name = json_object_get_string(k);
			if (name && json_object_object_get_ex(seen, name, NULL)) {
				char q[128];
				ret = verr_set(e, -EINVAL,
					       "key \"%s\" is given twice: give each key once",
					       quote(q, name, strlen(name)));
				json_object_put(k);
				break;
			}
			if (name)
				json_object_object_add(seen, name, NULL);
			json_object_put(k);
		}
	}
	json_object_put(seen);
	return ret;
}

/* An integer member in [min, max]: 0, or -EINVAL naming it. */
static int get_int(struct json_object *v, const char *key, int64_t min, int64_t max,
		   const char *what, int64_t *out, struct verr *e)
{
	char q[128];
	if (!json_object_is_type(v, json_type_int))
		return verr_set(e, -EINVAL,
				"\"%s\" is %s: send an integer from %" PRId64 " to %" PRId64
				" (%s)",
				key, describe(q, v), min, max, what);
	int64_t x = json_object_get_int64(v);
	if (x < min || x > max)
		return verr_set(e, -EINVAL,
				"\"%s\" is %s, out of range: send an integer from %" PRId64
				" to %" PRId64 " (%s)",
				key, describe(q, v), min, max, what);
	*out = x;
	return 0;
}

static const char *takes(enum api_op op)
{
	switch (op) {
	case API_OP_STOP:
		return "op, v and timeout_ms";
	case API_OP_SIGNAL:
		return "op, v and signal";
	default:
		return "op and v";
	}
}

static int parse_object(struct json_object *o, struct api_request *r, struct verr *e)
{
	char q[128];
	struct json_object *v;
	if (json_object_object_get_ex(o, "v", &v)) {
		if (!json_object_is_type(v, json_type_int))
			return verr_set(
			    e, -EINVAL,
			    "\"v\" (the protocol version) is %s: send \"v\":%d or leave "
			    "it out",
			    describe(q, v), API_VERSION);
		if (json_object_get_int64(v) != API_VERSION)
			return verr_set(e, -EINVAL,
					"\"v\": protocol version %s is not spoken here: this vmm "
					"speaks version %d: send \"v\":%d or leave it out",
					describe(q, v), API_VERSION, API_VERSION);
	}
	if (!json_object_object_get_ex(o, "op", &v))
		return verr_set(
		    e, -EINVAL,
		    "the request has no \"op\": send e.g. {\"op\":\"state\"} (ops: " OP_LIST ")");
	if (!json_object_is_type(v, json_type_string))
		return verr_set(e, -EINVAL, "\"op\" is %s: send a string, one of " OP_LIST,
				describe(q, v));
	const char *name = json_object_get_string(v);
	size_t name_len = (size_t)json_object_get_string_len(v);
	int op = -1;
	for (int i = 0; i < API_OP_COUNT; i++)
		if (strlen(op_names[i]) == name_len && memcmp(op_names[i], name, name_len) == 0)
			op = i;
	if (op < 0)
		return verr_set(e, -EINVAL, "\"op\": unknown op \"%s\": send one of " OP_LIST,
				quote(q, name, name_len));
	r->op = (enum api_op)op;

	json_object_object_foreach(o, key, val)
	{
		(void)val;
		if (!strcmp(key, "v") || !strcmp(key, "op"))
			continue;
		bool known = !strcmp(key, "timeout_ms") || !strcmp(key, "signal");
		if (!known)
			return verr_set(e, -EINVAL,
					"unknown key \"%s\": a %s request takes only %s",
					quote(q, key, strlen(key)), op_names[op], takes(r->op));
		if ((!strcmp(key, "timeout_ms") && r->op != API_OP_STOP) ||
		    (!strcmp(key, "signal") && r->op != API_OP_SIGNAL))
			return verr_set(
			    e, -EINVAL,
			    "\"%s\" does not belong to a %s request (only %s takes it): "
			    "drop it",
			    key, op_names[op], key[0] == 't' ? "stop" : "signal");
	}

	int64_t x;
	if (r->op == API_OP_STOP) {
		r->timeout_ms = API_STOP_TIMEOUT_DEFAULT_MS;
		if (json_object_object_get_ex(o, "timeout_ms", &v)) {
			int ret = get_int(v, "timeout_ms", 0, API_STOP_TIMEOUT_MAX_MS,
					  "milliseconds before the stop is forced", &x, e);
			if (ret < 0)
				return ret;
			r->timeout_ms = (uint32_t)x;
		}
	}
	if (r->op == API_OP_SIGNAL) {
		if (!json_object_object_get_ex(o, "signal", &v))
			return verr_set(e, -EINVAL,
					"a signal request needs \"signal\": send a signal number "
					"from 1 to %d, e.g. {\"op\":\"signal\",\"signal\":15} for "
					"SIGTERM",
					API_SIGNAL_MAX);
		int ret = get_int(v, "signal", 1, API_SIGNAL_MAX, "a signal number", &x, e);
		if (ret < 0)
			return ret;
		r->signal = (int)x;
	}
	return 0;
}

int api_request_parse(const char *line, size_t len, struct api_request *r, struct verr *e)
{
	memset(r, 0, sizeof(*r));
	if (len > API_REQUEST_MAX || (len == API_REQUEST_MAX && line[len - 1] != '\n'))
		return verr_set(e, -EINVAL,
				"the request is longer than %d bytes with its newline: send one "
				"short JSON object per line",
				API_REQUEST_MAX);
	if (len && line[len - 1] == '\n')
		len--;
	if (len && line[len - 1] == '\r')
		len--;
	unsigned members;
	int ret = check_bytes(line, len, &members, e);
	if (ret < 0)
		return ret;
	size_t first = 0;
	while (first < len && (line[first] == ' ' || line[first] == '\t' || line[first] == '\r'))
		first++;
	if (first == len)
		return verr_set(e, -EINVAL,
				"the request is empty: send one JSON object per line, e.g. "
				"{\"op\":\"state\"}");
	if (line[first] != '{')
		return verr_set(e, -EINVAL,
				"the request is not a JSON object (it starts with '%c'): send one "
				"object per line, e.g. {\"op\":\"state\"}",
				line[first]);

	struct json_tokener *tok = json_tokener_new_ex(API_JSON_DEPTH);
	if (!tok)
		return verr_set(e, -ENOMEM, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *o = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		if (jerr == json_tokener_continue)
			return verr_set(e, -EINVAL,
					"the request ends before its JSON object does: send the "
					"whole object on one line");
		if (jerr == json_tokener_error_depth)
			return verr_set(e, -EINVAL,
					"the request nests deeper than %d levels: a request is one "
					"flat object",
					API_JSON_DEPTH);
		return verr_set(e, -EINVAL,
				"the request is not valid JSON at byte %zu (%s): send one JSON "
				"object per line, e.g. {\"op\":\"state\"}",
				end, json_tokener_error_desc(jerr));
	}
	/* json-c stops at the end of the object and then takes only whitespace; what is left is
	 * trailing bytes (it reports those as an error, but do not depend on it). */
	for (size_t i = end; i < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
			json_object_put(o);
			return verr_set(
			    e, -EINVAL,
			    "the request goes on after its JSON object at byte %zu: send "
			    "one object per line",
			    i);
		}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return verr_set(e, -EINVAL,
				"the request is not a JSON object: send e.g. {\"op\":\"state\"}");
	}
	if ((unsigned)json_object_object_length(o) != members) {
		json_object_put(o);
		return duplicate_key(line, len, e);
	}
	ret = parse_object(o, r, e);
	json_object_put(o);
	if (ret < 0)
		memset(r, 0, sizeof(*r));
	return ret;
}

int api_request_format(const struct api_request *r, char *buf, size_t cap)
{
	const char *name = api_op_name(r->op);
	if (!name)
		return -EINVAL;
	int n;
	switch (r->op) {
	case API_OP_STOP:
		if (r->timeout_ms > API_STOP_TIMEOUT_MAX_MS)
			return -EINVAL;
		n = snprintf(buf, cap, "{\"v\":%d,\"op\":\"stop\",\"timeout_ms\":%" PRIu32 "}\n",
			     API_VERSION, r->timeout_ms);
		break;
	case API_OP_SIGNAL:
		if (r->signal < 1 || r->signal > API_SIGNAL_MAX)
			return -EINVAL;
		n = snprintf(buf, cap, "{\"v\":%d,\"op\":\"signal\",\"signal\":%d}\n", API_VERSION,
			     r->signal);
		break;
	default:
		n = snprintf(buf, cap, "{\"v\":%d,\"op\":\"%s\"}\n", API_VERSION, name);
	}
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= cap)
		return -E2BIG;
	return n;
}

struct json_object *api_reply_ok(void)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	struct json_object *v = json_object_new_int(API_VERSION);
	struct json_object *ok = json_object_new_boolean(1);
	if (!v || !ok || json_object_object_add(o, "v", v) < 0) {
		json_object_put(v);
		json_object_put(ok);
		json_object_put(o);
		return NULL;
	}
	if (json_object_object_add(o, "ok", ok) < 0) {
		json_object_put(ok);
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* Replaces every byte of s[0..n) that is not part of valid UTF-8 with '?'. */
static void fix_utf8(char *s, size_t n)
{
	unsigned char *u = (unsigned char *)s;
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(u + i, n - i);
		if (k) {
			i += k;
		} else {
			u[i] = '?';
			i++;
		}
	}
}

char *api_reply_line(struct json_object *reply)
{
	if (!reply)
		return NULL;
	size_t len;
	const char *s = json_object_to_json_string_length(
	    reply, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
	if (!s) {
		json_object_put(reply);
		return NULL;
	}
	if (len + 1 > API_REPLY_MAX) {
		json_object_put(reply);
		return api_error_line("the reply is %zu bytes, more than the protocol's %u "
				      "(API_REPLY_MAX): this is a bug in vmm",
				      len + 1, API_REPLY_MAX);
	}
	char *line = malloc(len + 2);
	if (line) {
		memcpy(line, s, len);
		/* JSON syntax is ASCII: a byte that is not UTF-8 is inside a string */
		fix_utf8(line, len);
		line[len] = '\n';
		line[len + 1] = '\0';
	}
	json_object_put(reply);
	return line;
}

char *api_error_line(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "an error whose message could not be formatted");
	size_t len = strlen(msg);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = ' ';
	fix_utf8(msg, len);

	struct json_object *o = json_object_new_object();
	struct json_object *v = json_object_new_int(API_VERSION);
	struct json_object *ok = json_object_new_boolean(0);
	struct json_object *err = json_object_new_string_len(msg, (int)len);
	if (!o || !v || !ok || !err) {
		json_object_put(o);
		json_object_put(v);
		json_object_put(ok);
		json_object_put(err);
		return NULL;
	}
	/* json_object_object_add fails only when the table cannot grow: o then owns nothing */
	if (json_object_object_add(o, "v", v) < 0) {
		json_object_put(v);
		v = NULL;
	}
	if (json_object_object_add(o, "ok", ok) < 0) {
		json_object_put(ok);
		ok = NULL;
	}
	if (json_object_object_add(o, "error", err) < 0) {
		json_object_put(err);
		err = NULL;
	}
	if (!v || !ok || !err) {
		json_object_put(o);
		return NULL;
	}
	return api_reply_line(o);
}

int api_client_connect(const char *path, struct verr *e)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(path);
	if (n == 0)
		return verr_set(
		    e, -EINVAL,
		    "the socket path is empty: give the --api-sock PATH vmm was started "
		    "with");
	if (n >= sizeof(a.sun_path))
		return verr_set(
		    e, -ENAMETOOLONG,
		    "%s: the path is %zu bytes, more than the %zu a Unix socket address "
		    "holds: use a shorter path (or a relative one)",
		    path, n, sizeof(a.sun_path) - 1);
	memcpy(a.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return verr_set(e, -errno, "cannot create a Unix socket: %s", strerror(errno));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
		return fd;
	int err = errno;
	close(fd);
	switch (err) {
	case ENOENT:
		return verr_set(e, -err,
				"no socket at %s: is vmm running with --api-sock %s? (the socket "
				"goes away when vmm exits)",
				path, path);
	case ECONNREFUSED:
		return verr_set(e, -err,
				"nothing listens on %s: the vmm that made it has exited (or it is "
				"not a socket)",
				path);
	case EACCES:
	case EPERM:
		return verr_set(e, -err,
				"permission denied connecting to %s: the socket is mode 0600, for "
				"the user vmm runs as",
				path);
	case ENOTDIR:
		return verr_set(e, -err, "%s: a part of the path is not a directory", path);
	case EAGAIN:
		return verr_set(e, -err,
				"%s: the server has too many connections waiting: try again", path);
	default:
		return verr_set(e, -err, "cannot connect to %s: %s", path, strerror(err));
	}
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Waits until fd is ready for events or the deadline (-1: none) passes: 0, -ETIMEDOUT or a
 * negative errno. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			wait = left > 60000 ? 60000 : (int)left;
		}
		struct pollfd p = {.fd = fd, .events = events};
		int n = poll(&p, 1, wait);
		if (n > 0)
			return 0; /* ready, or an error or hang-up that the next call reports */
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

static int check_reply(struct json_object *o, struct verr *e)
{
	struct json_object *v, *ok, *err;
	if (!json_object_is_type(o, json_type_object))
		return verr_set(e, -EPROTO, "the reply is not a JSON object");
	if (!json_object_object_get_ex(o, "v", &v) || !json_object_is_type(v, json_type_int))
		return verr_set(e, -EPROTO, "the reply has no integer \"v\" (protocol version)");
	if (json_object_get_int64(v) != API_VERSION)
		return verr_set(e, -EPROTO,
				"the server speaks protocol version %" PRId64
				", this client version %d: use the vmm ctl of the same vmm",
				json_object_get_int64(v), API_VERSION);
	if (!json_object_object_get_ex(o, "ok", &ok) || !json_object_is_type(ok, json_type_boolean))
		return verr_set(e, -EPROTO, "the reply has no boolean \"ok\"");
	if (!json_object_get_boolean(ok) && (!json_object_object_get_ex(o, "error", &err) ||
					     !json_object_is_type(err, json_type_string)))
		return verr_set(e, -EPROTO, "the reply has \"ok\":false but no string \"error\"");
	return 0;
}

int api_client_call(int fd, const struct api_request *r, int timeout_ms, struct json_object **reply,
		    struct verr *e)
{
	return api_client_call_fds(fd, r, NULL, 0, timeout_ms, reply, e);
}

/* Sends len bytes of buf with the descriptors (none: a plain send). */
static ssize_t send_fds(int fd, const char *buf, size_t len, const int *fds, unsigned nfds)
{
	if (!nfds)
		return send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	union {
		char b[CMSG_SPACE(API_MAX_FDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = u.b,
			   .msg_controllen = CMSG_SPACE(nfds * sizeof(int))};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
	memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	return sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

int api_client_call_fds(int fd, const struct api_request *r, const int *fds, unsigned nfds,
			int timeout_ms, struct json_object **reply, struct verr *e)
{
	*reply = NULL;
	if (nfds > API_MAX_FDS)
		return verr_set(e, -EINVAL, "a request carries at most %u descriptors",
				API_MAX_FDS);
	char req[256];
	int n = api_request_format(r, req, sizeof(req));
	if (n < 0)
		return verr_set(e, n, "the request cannot be sent: an op or value out of range");
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	int ret;
	for (size_t sent = 0; sent < (size_t)n;) {
		ret = wait_fd(fd, POLLOUT, deadline);
		if (ret == -ETIMEDOUT)
			return verr_set(e, ret, "no room to send the request in %d ms", timeout_ms);
		if (ret < 0)
			return verr_set(e, ret, "poll: %s", strerror(-ret));
		/* the descriptors go with the first bytes sent, once */
		ssize_t w = send_fds(fd, req + sent, (size_t)n - sent, fds, sent ? 0 : nfds);
		if (w < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (w < 0)
			return verr_set(e, -errno, "cannot send the request: %s", strerror(errno));
		sent += (size_t)w;
	}

	char *buf = NULL;
	size_t have = 0, cap = 0;
	bool line = false;
	while (!line) {
		if (have >= API_REPLY_MAX) {
			ret = verr_set(e, -EMSGSIZE,
				       "the reply has no end of line in its first %u bytes "
				       "(API_REPLY_MAX): is this vmm's control socket?",
				       API_REPLY_MAX);
			goto fail;
		}
		size_t want = API_REPLY_MAX - have;
		if (want > 65536)
			want = 65536;
		if (cap < have + want + 1) {
			size_t ncap = cap ? cap * 2 : 4096;
			while (ncap < have + want + 1)
				ncap *= 2;
			char *nb = realloc(buf, ncap);
			if (!nb) {
				ret = verr_set(e, -ENOMEM, "out of memory for the reply");
				goto fail;
			}
			buf = nb, cap = ncap;
		}
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret == -ETIMEDOUT) {
			ret = verr_set(e, ret, "no reply within %d ms", timeout_ms);
			goto fail;
		}
		if (ret < 0) {
			ret = verr_set(e, ret, "poll: %s", strerror(-ret));
			goto fail;
		}
		/* Peek, then take only up to the newline: the bytes after it are not ours. */
		ssize_t got = recv(fd, buf + have, want, MSG_PEEK | MSG_DONTWAIT);
		if (got < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (got < 0 && errno != ECONNRESET) {
			ret = verr_set(e, -errno, "cannot read the reply: %s", strerror(errno));
			goto fail;
		}
		if (got <= 0) {
			ret = verr_set(e, -ECONNRESET,
				       have ? "the server closed the connection in the middle of "
					      "its reply"
					    : "the server closed the connection without a reply");
			goto fail;
		}
		char *nl = memchr(buf + have, '\n', (size_t)got);
		size_t take = nl ? (size_t)(nl - (buf + have)) + 1 : (size_t)got;
		ssize_t t = recv(fd, buf + have, take, MSG_DONTWAIT);
		if (t < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (t <= 0) {
			ret = verr_set(e, t < 0 ? -errno : -ECONNRESET, "cannot read the reply: %s",
				       t < 0 ? strerror(errno) : "the connection closed");
			goto fail;
		}
		line = nl && (size_t)t == take;
		have += (size_t)t;
	}
	buf[have] = '\0';

	struct json_tokener *tok = json_tokener_new();
	if (!tok) {
		ret = verr_set(e, -ENOMEM, "out of memory for the reply");
		goto fail;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	struct json_object *o = json_tokener_parse_ex(tok, buf, (int)have);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	json_tokener_free(tok);
	if (!o || jerr != json_tokener_success) {
		json_object_put(o);
		char q[128];
		ret = verr_set(e, -EPROTO, "the reply is not JSON (%s): \"%s\"",
			       json_tokener_error_desc(jerr), quote(q, buf, have - 1));
		goto fail;
	}
	ret = check_reply(o, e);
	if (ret < 0) {
		json_object_put(o);
		goto fail;
	}
	free(buf);
	*reply = o;
	return 0;
fail:
	free(buf);
	return ret;
}
