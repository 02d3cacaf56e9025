/* The agent protocol's frame header and START codec (see agent_proto.h). */
#include "guest/agent_proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define START_FIXED 24u /* flags, uid, gid, rows+cols, argc, envc */

int agent_hdr_decode(const uint8_t *buf, struct agent_hdr *h)
{
	h->len = agent_get_u32(buf);
	h->type = agent_get_u16(buf + 4);
	h->flags = agent_get_u16(buf + 6);
	if (h->len > AGENT_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (h->flags != 0 || h->type < AGENT_HELLO || h->type > AGENT_SHUTDOWN)
		return -EPROTO;
	return 0;
}

void agent_hdr_encode(uint8_t *buf, uint16_t type, uint32_t len)
{
	agent_put_u32(buf, len);
	agent_put_u16(buf + 4, type);
	agent_put_u16(buf + 6, 0);
}

static const char *check_env(const char *s)
{
	if (s[0] == '=' || !strchr(s, '='))
		return "an environment entry is not KEY=VALUE";
	return NULL;
}

static int put_str(uint8_t *buf, size_t cap, size_t *off, const char *s)
{
	size_t n = strlen(s) + 1;
	if (n > cap - *off)
		return -E2BIG;
	memcpy(buf + *off, s, n);
	*off += n;
	return 0;
}

int agent_start_encode(const struct agent_start *s, uint8_t *buf, size_t cap)
{
	if (s->argc == 0 || !s->argv[0] || !s->argv[0][0] || !s->cwd || s->cwd[0] != '/')
		return -EINVAL;
	if (s->argc > AGENT_MAX_ARGS || s->envc > AGENT_MAX_ARGS)
		return -E2BIG;
	if (cap > AGENT_MAX_PAYLOAD)
		cap = AGENT_MAX_PAYLOAD;
	if (cap < START_FIXED)
		return -E2BIG;
	agent_put_u32(buf, s->flags);
	agent_put_u32(buf + 4, s->uid);
	agent_put_u32(buf + 8, s->gid);
	agent_put_u16(buf + 12, s->rows);
	agent_put_u16(buf + 14, s->cols);
	agent_put_u32(buf + 16, s->argc);
	agent_put_u32(buf + 20, s->envc);
	size_t off = START_FIXED;
	if (put_str(buf, cap, &off, s->cwd) < 0)
		return -E2BIG;
	for (uint32_t i = 0; i < s->argc; i++)
		if (put_str(buf, cap, &off, s->argv[i]) < 0)
			return -E2BIG;
	for (uint32_t i = 0; i < s->envc; i++) {
		if (check_env(s->env[i]))
			return -EINVAL;
		if (put_str(buf, cap, &off, s->env[i]) < 0)
			return -E2BIG;
	}
	return (int)off;
}

/* Splits buf[off, len) into n NUL-terminated strings stored in out[]; fails unless exactly n fit
 * and nothing is left over. buf[len] is writable scratch. */
static int take_strs(uint8_t *buf, size_t len, size_t *off, char **out, uint32_t n)
{
	buf[len] = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (*off >= len)
			return -1;
		char *s = (char *)buf + *off;
		size_t l = strlen(s); /* stops at buf[len] at the latest */
		if (*off + l == len)
			return -1; /* the last string lacks its NUL */
		out[i] = s;
		*off += l + 1;
	}
	return 0;
}

int agent_start_decode(uint8_t *buf, size_t len, struct agent_start *s, const char **why)
{
	memset(s, 0, sizeof(*s));
	if (len < START_FIXED) {
		*why = "START is shorter than its fixed fields";
		return -EPROTO;
	}
	s->flags = agent_get_u32(buf);
	s->uid = agent_get_u32(buf + 4);
	s->gid = agent_get_u32(buf + 8);
	s->rows = agent_get_u16(buf + 12);
	s->cols = agent_get_u16(buf + 14);
	s->argc = agent_get_u32(buf + 16);
	s->envc = agent_get_u32(buf + 20);
	if (s->flags & ~AGENT_START_TTY) {
		*why = "START has unknown flags";
		return -EPROTO;
	}
	if (s->argc == 0 || s->argc > AGENT_MAX_ARGS || s->envc > AGENT_MAX_ARGS) {
		*why = "START has no arguments or too many arguments or environment entries";
		return -EPROTO;
	}
	s->argv = calloc(s->argc + 1, sizeof(char *));
	s->env = calloc(s->envc + 1, sizeof(char *));
	if (!s->argv || !s->env) {
		agent_start_free(s);
		*why = "out of memory";
		return -ENOMEM;
	}
	size_t off = START_FIXED;
	char *cwd;
	if (take_strs(buf, len, &off, &cwd, 1) < 0 ||
	    take_strs(buf, len, &off, s->argv, s->argc) < 0 ||
	    take_strs(buf, len, &off, s->env, s->envc) < 0) {
		agent_start_free(s);
		*why = "START holds fewer strings than it announces";
		return -EPROTO;
	}
	s->cwd = cwd;
	*why = NULL;
	if (off != len)
		*why = "START has bytes after its last string";
	else if (cwd[0] != '/')
		*why = "START's working directory is not an absolute path";
	else if (!s->argv[0][0])
		*why = "START's program name is empty";
	for (uint32_t i = 0; !*why && i < s->envc; i++)
		*why = check_env(s->env[i]);
	if (*why) {
		agent_start_free(s);
		return -EPROTO;
	}
	return 0;
}

void agent_start_free(struct agent_start *s)
{
	free(s->argv);
	free(s->env);
	s->argv = s->env = NULL;
}
