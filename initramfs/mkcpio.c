/* mkcpio: packs a newc cpio archive (an initramfs) from a list of entry specs on the command line,
 * so the build needs neither root (for device nodes) nor a staging tree:
 *
 *   mkcpio OUT.cpio SPEC...
 *     file:DEST:MODE:HOSTPATH   regular file DEST with the contents of HOSTPATH
 *     dir:DEST:MODE             directory
 *     slink:DEST:TARGET         symbolic link DEST -> TARGET
 *     nod:DEST:MODE:c|b:MAJ:MIN character or block device node
 *
 * MODE is octal permission bits (at most 07777). HOSTPATH and TARGET run to the end of the spec,
 * so they may contain ':'. Entries are written in the order given (put a directory before its
 * contents). Every spec is checked before anything is written, and each bad one gets one line on
 * stderr. The archive goes to a temporary file in OUT's directory that is renamed over OUT only
 * when complete, so a failed run never leaves a truncated initramfs behind for the next boot. */
#include "initramfs/cpio.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum spec_kind {
	SPEC_FILE,
	SPEC_DIR,
	SPEC_SLINK,
	SPEC_NOD,
};

struct spec {
	int index;	  /* 1-based, for messages */
	const char *text; /* as given on the command line */
	enum spec_kind kind;
	char *fields; /* a copy of text that dest/arg point into */
	const char *dest;
	const char *arg; /* HOSTPATH or TARGET */
	mode_t mode;
	unsigned int major, minor;
};

static void usage(FILE *out)
{
	fprintf(out, "usage: mkcpio OUT.cpio SPEC...\n"
		     "  file:DEST:MODE:HOSTPATH   regular file with HOSTPATH's contents\n"
		     "  dir:DEST:MODE             directory\n"
		     "  slink:DEST:TARGET         symbolic link\n"
		     "  nod:DEST:MODE:c|b:MAJ:MIN device node\n"
		     "MODE is octal; entries are written in the order given.\n");
}

static void spec_error(const struct spec *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void spec_error(const struct spec *s, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "mkcpio: spec %d '%s': %s\n", s->index, s->text, msg);
}

/* Splits off the next ':'-separated field: returns it and advances *rest, or NULL if no ':' is
 * left (the last field is *rest itself). */
static char *next_field(char **rest)
{
	char *start = *rest;
	char *colon = start ? strchr(start, ':') : NULL;

	if (!colon)
		return NULL;
	*colon = '\0';
	*rest = colon + 1;
	return start;
}

static int parse_mode(const struct spec *s, const char *text, mode_t *mode)
{
	char *end;

	/* Digits only: strtoul alone would also take "-1", " 7" or "+7". */
	errno = 0;
	unsigned long v = strtoul(text, &end, 8);
	if (!*text || text[strspn(text, "01234567")] || *end || errno || v > 07777) {
		spec_error(s, "bad mode '%s' (expected octal, at most 07777)", text);
		return -EINVAL;
	}
	*mode = (mode_t)v;
	return 0;
}

static int parse_dev(const struct spec *s, const char *what, const char *text, unsigned int *out)
{
	char *end;

	errno = 0;
	unsigned long v = strtoul(text, &end, 10);
	if (!*text || text[strspn(text, "0123456789")] || *end || errno || v > UINT_MAX) {
		spec_error(s, "bad %s number '%s'", what, text);
		return -EINVAL;
	}
	*out = (unsigned int)v;
	return 0;
}

/* Parses s->text into s; prints one line and returns -EINVAL if it is malformed. */
static int parse_spec(struct spec *s)
{
	static const char *const forms[] = {
	    [SPEC_FILE] = "file:DEST:MODE:HOSTPATH",
	    [SPEC_DIR] = "dir:DEST:MODE",
	    [SPEC_SLINK] = "slink:DEST:TARGET",
	    [SPEC_NOD] = "nod:DEST:MODE:c|b:MAJ:MIN",
	};
	char *rest, *kind, *mode = NULL, *type = NULL, *major = NULL;

	s->fields = strdup(s->text);
	if (!s->fields) {
		spec_error(s, "%s", strerror(ENOMEM));
		return -ENOMEM;
	}
	rest = s->fields;
	kind = next_field(&rest);
	if (!kind) {
		/* No ':' at all: the whole spec is the kind, and no fields follow it. */
		kind = rest;
		rest = NULL;
	}
	if (!strcmp(kind, "file")) {
		s->kind = SPEC_FILE;
	} else if (!strcmp(kind, "dir")) {
		s->kind = SPEC_DIR;
	} else if (!strcmp(kind, "slink")) {
		s->kind = SPEC_SLINK;
	} else if (!strcmp(kind, "nod")) {
		s->kind = SPEC_NOD;
	} else {
		spec_error(s, "unknown kind '%s' (expected file, dir, slink or nod)", kind);
		return -EINVAL;
	}

	/* Each form takes fields up to its last one, which is whatever remains. */
	bool ok = false;
	switch (s->kind) {
	case SPEC_FILE:
		ok = (s->dest = next_field(&rest)) && (mode = next_field(&rest)) && (s->arg = rest);
		break;
	case SPEC_DIR:
		ok = (s->dest = next_field(&rest)) && (mode = rest);
		break;
	case SPEC_SLINK:
		ok = (s->dest = next_field(&rest)) && (s->arg = rest);
		break;
	case SPEC_NOD:
		ok = (s->dest = next_field(&rest)) && (mode = next_field(&rest)) &&
		     (type = next_field(&rest)) && (major = next_field(&rest));
		break;
	}
	if (!ok) {
		spec_error(s, "expected %s", forms[s->kind]);
		return -EINVAL;
	}
	if (!*s->dest || !strcmp(s->dest, "/")) {
		spec_error(s, "empty DEST");
		return -EINVAL;
	}
	if (strlen(s->dest) >= CPIO_NAME_MAX) {
		spec_error(s, "DEST is longer than %d bytes", CPIO_NAME_MAX - 1);
		return -EINVAL;
	}
	if ((s->kind == SPEC_FILE || s->kind == SPEC_SLINK) && !*s->arg) {
		spec_error(s, "expected %s (%s is empty)", forms[s->kind],
			   s->kind == SPEC_FILE ? "HOSTPATH" : "TARGET");
		return -EINVAL;
	}
	if (mode && parse_mode(s, mode, &s->mode))
		return -EINVAL;
	if (s->kind == SPEC_FILE) {
		/* Caught here so that every missing input is reported, not just the first. */
		struct stat st;
		if (stat(s->arg, &st) < 0) {
			spec_error(s, "cannot read '%s': %s", s->arg, strerror(errno));
			return -EINVAL;
		}
		if (!S_ISREG(st.st_mode)) {
			spec_error(s, "cannot read '%s': not a regular file", s->arg);
			return -EINVAL;
		}
	}
	if (s->kind == SPEC_NOD) {
		if (!strcmp(type, "c")) {
			s->mode |= S_IFCHR;
		} else if (!strcmp(type, "b")) {
			s->mode |= S_IFBLK;
		} else {
			spec_error(s, "bad device type '%s' (expected c or b)", type);
			return -EINVAL;
		}
		if (parse_dev(s, "major", major, &s->major) ||
		    parse_dev(s, "minor", rest, &s->minor))
			return -EINVAL;
	}
	return 0;
}

/* Adds one parsed spec; on error prints one line (unless it is a write error, which the caller
 * reports against the output file) and returns it. */
static int add_spec(struct cpio_writer *w, const struct spec *s)
{
	int err = 0;

	switch (s->kind) {
	case SPEC_FILE:
		err = cpio_add_file_from(w, s->dest, s->mode, s->arg);
		if (err && !w->error)
			spec_error(s, "cannot read '%s': %s", s->arg,
				   err == -EINVAL ? "not a regular file" : strerror(-err));
		return err;
	case SPEC_DIR:
		err = cpio_add_dir(w, s->dest, s->mode);
		break;
	case SPEC_SLINK:
		err = cpio_add_symlink(w, s->dest, s->arg);
		break;
	case SPEC_NOD:
		err = cpio_add_node(w, s->dest, s->mode, s->major, s->minor);
		break;
	}
	if (err && !w->error)
		spec_error(s, "%s", strerror(-err));
	return err;
}

/* Writes the archive to fd; returns 0 or -errno, with the problem already reported. */
static int write_archive(int fd, const char *out, const struct spec *specs, int n)
{
	struct cpio_writer w;
	int err = 0;

	cpio_writer_init_fd(&w, fd);
	for (int i = 0; i < n && !err; i++)
		err = add_spec(&w, &specs[i]);
	if (!err)
		err = cpio_finish(&w);
	if (w.error)
		fprintf(stderr, "mkcpio: writing '%s': %s\n", out, strerror(-w.error));
	return err;
}

/* Creates a temporary next to `out` (so rename(2) replaces OUT atomically), writes the archive
 * there and renames it over OUT; removes the temporary on failure. */
static int write_output(const char *out, const struct spec *specs, int nspecs)
{
	size_t tmplen = strlen(out) + sizeof(".XXXXXX");
	char *tmp = malloc(tmplen);
	int err = -ENOMEM;

	if (!tmp) {
		fprintf(stderr, "mkcpio: %s\n", strerror(ENOMEM));
		return err;
	}
	snprintf(tmp, tmplen, "%s.XXXXXX", out);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		err = -errno;
		fprintf(stderr, "mkcpio: cannot create a temporary file next to '%s': %s\n", out,
			strerror(errno));
		free(tmp);
		return err;
	}
	/* mkstemp makes the file 0600; give it the mode a plain creat(2) would have. */
	mode_t mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0644 & ~mask) < 0) {
		err = -errno;
		fprintf(stderr, "mkcpio: chmod '%s': %s\n", tmp, strerror(errno));
		close(fd);
		goto fail;
	}
	err = write_archive(fd, out, specs, nspecs);
	if (err) {
		close(fd);
		goto fail;
	}
	if (close(fd) < 0) {
		err = -errno;
		fprintf(stderr, "mkcpio: writing '%s': %s\n", out, strerror(errno));
		goto fail;
	}
	if (rename(tmp, out) < 0) {
		err = -errno;
		fprintf(stderr, "mkcpio: cannot rename '%s' to '%s': %s\n", tmp, out,
			strerror(errno));
		goto fail;
	}
	free(tmp);
	return 0;

fail:
	unlink(tmp);
	free(tmp);
	return err;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return 0;
	}
	if (argc < 2) {
		usage(stderr);
		return 2;
	}

	int nspecs = argc - 2;
	struct spec *specs = calloc((size_t)(nspecs ? nspecs : 1), sizeof(*specs));
	if (!specs) {
		fprintf(stderr, "mkcpio: %s\n", strerror(ENOMEM));
		return 1;
	}
	int bad = 0;
	for (int i = 0; i < nspecs; i++) {
		specs[i].index = i + 1;
		specs[i].text = argv[i + 2];
		if (parse_spec(&specs[i]))
			bad++;
	}
	int rc = bad ? 1 : (write_output(argv[1], specs, nspecs) ? 1 : 0);

	for (int i = 0; i < nspecs; i++)
		free(specs[i].fields);
	free(specs);
	return rc;
}
