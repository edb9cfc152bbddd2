/* SPDX-License-Identifier: MIT */
/*
 * docs.c - every public function is documented: for each function declared
 * in include/evq.h there is a man page man/man3/<name>.3 (a real page or a
 * ".so" link to one) whose NAME section names it, and README.md mentions it.
 *
 * The names come from the header itself, never from a list kept here, so a
 * function added by a later change without documentation fails this test.
 * A name is an identifier evq_xxx followed by "(" in a declaration at file
 * scope (not inside a struct, an inline function's body or a typedef, and
 * not in a comment or the C++ guard); evq__xxx names are internal.
 *
 * Run from the top of the source tree (make check does), or set EVQ_SRCDIR.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"

#define MAX_NAMES 512
#define MAX_NAME 64

static const char *srcdir = ".";

/* Reads a whole file relative to srcdir; NULL if it cannot be read. */
static char *slurp(const char *rel)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", srcdir, rel);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, len = 0;
	char *buf = malloc(cap);
	CHECK(buf);
	size_t got;
	while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (cap - len < 2) {
			cap *= 2;
			buf = realloc(buf, cap);
			CHECK(buf);
		}
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static int is_ident(int c)
{
	return isalnum((unsigned char)c) || c == '_';
}

/* Replaces comments, string and character literals with spaces (newlines
 * kept), so that nothing in them looks like a declaration. */
static void blank_comments(char *s)
{
	for (char *p = s; *p;) {
		if (p[0] == '/' && p[1] == '*') {
			char *end = strstr(p + 2, "*/");
			end = end ? end + 2 : p + strlen(p);
			for (; p < end; p++)
				if (*p != '\n')
					*p = ' ';
		} else if (p[0] == '/' && p[1] == '/') {
			for (; *p && *p != '\n'; p++)
				*p = ' ';
		} else if (*p == '"' || *p == '\'') {
			char q = *p;
			for (*p++ = ' '; *p && *p != q && *p != '\n'; p++) {
				if (*p == '\\' && p[1])
					*p++ = ' ';
				*p = ' ';
			}
			if (*p == q)
				*p++ = ' ';
		} else {
			p++;
		}
	}
}

/* Blanks preprocessor lines (with their continuations), and everything
 * between "#ifdef __cplusplus" and its #endif (the extern "C" guard). */
static void blank_preprocessor(char *s)
{
	int cplusplus = 0; /* nesting depth inside an #ifdef __cplusplus */
	for (char *line = s; *line;) {
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		char *eol = strchr(line, '\n');
		if (!eol)
			eol = line + strlen(line);
		if (*p == '#') {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (strncmp(p, "if", 2) == 0) {
				if (cplusplus)
					cplusplus++;
				else if (strncmp(p, "ifdef", 5) == 0 &&
					 strstr(p, "__cplusplus") &&
					 strstr(p, "__cplusplus") < eol)
					cplusplus = 1;
			} else if (strncmp(p, "endif", 5) == 0 && cplusplus) {
				cplusplus--;
			}
			/* continuation lines belong to the directive */
			while (*eol && eol > line && eol[-1] == '\\') {
				char *next = strchr(eol + 1, '\n');
				eol = next ? next : eol + strlen(eol);
			}
			for (char *c = line; c < eol; c++)
				*c = ' ';
		} else if (cplusplus) {
			for (char *c = line; c < eol; c++)
				*c = ' ';
		}
		line = *eol ? eol + 1 : eol;
	}
}

static int have(char names[][MAX_NAME], int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return 1;
	return 0;
}

/* Collects the public function names declared at file scope in the
 * (already blanked) header text. */
static int find_functions(const char *s, char names[][MAX_NAME])
{
	/* Keep only file-scope text; each top-level { } block ends a
	 * declaration, like a ';'. */
	size_t len = strlen(s);
	char *top = malloc(len + 1);
	CHECK(top);
	size_t k = 0;
	int depth = 0;
	for (const char *p = s; *p; p++) {
		if (*p == '{') {
			depth++;
		} else if (*p == '}') {
			if (depth > 0 && --depth == 0)
				top[k++] = ';';
		} else if (depth == 0) {
			top[k++] = *p;
		}
	}
	top[k] = '\0';

	int n = 0;
	for (char *decl = strtok(top, ";"); decl; decl = strtok(NULL, ";")) {
		const char *p = decl;
		while (isspace((unsigned char)*p))
			p++;
		if (strncmp(p, "typedef", 7) == 0 && !is_ident(p[7]))
			continue;
		for (; *p; p++) {
			if (strncmp(p, "evq_", 4) != 0 || (p > decl && is_ident(p[-1])))
				continue;
			const char *e = p + 4;
			while (islower((unsigned char)*e) || isdigit((unsigned char)*e) ||
			       *e == '_')
				e++;
			if (is_ident(*e) || p[4] == '_' || e == p + 4)
				continue; /* not all lower case, or evq__internal */
			const char *after = e;
			while (isspace((unsigned char)*after))
				after++;
			if (*after != '(')
				continue;
			size_t l = (size_t)(e - p);
			CHECK(l < MAX_NAME && n < MAX_NAMES);
			char name[MAX_NAME];
			memcpy(name, p, l);
			name[l] = '\0';
			if (!have(names, n, name))
				strcpy(names[n++], name);
			break; /* the declarator: one function per declaration */
		}
	}
	free(top);
	return n;
}

/* Does text contain name as a whole identifier? */
static int mentions(const char *text, const char *name)
{
	size_t l = strlen(name);
	for (const char *p = strstr(text, name); p; p = strstr(p + 1, name))
		if ((p == text || !is_ident(p[-1])) && !is_ident(p[l]))
			return 1;
	return 0;
}

/* The NAME section of a man page source (up to the next .SH), or NULL. */
static char *name_section(char *page)
{
	char *p = strstr(page, "\n.SH NAME");
	if (!p)
		return NULL;
	p += 9;
	char *end = strstr(p, "\n.SH");
	if (end)
		*end = '\0';
	return p;
}

/* Checks man/man3/<name>.3; on failure, *why says what is wrong. */
static int man_ok(const char *name, const char **why)
{
	char rel[256];
	snprintf(rel, sizeof rel, "man/man3/%s.3", name);
	char *page = slurp(rel);
	if (!page) {
		*why = "no man/man3/<name>.3";
		return 0;
	}
	if (strncmp(page, ".so ", 4) == 0) {
		/* a link page: ".so man3/target.3", relative to man/ */
		int l = (int)strcspn(page + 4, " \t\r\n");
		snprintf(rel, sizeof rel, "man/%.*s", l, page + 4);
		free(page);
		page = slurp(rel);
		if (!page) {
			*why = ".so link to a page that does not exist";
			return 0;
		}
	}
	char *sec = name_section(page);
	int ok = sec && mentions(sec, name);
	if (!ok)
		*why = "the page's NAME section does not name the function";
	free(page);
	return ok;
}

int main(void)
{
	static char names[MAX_NAMES][MAX_NAME];
	const char *env = getenv("EVQ_SRCDIR");
	if (env && *env)
		srcdir = env;

	char *header = slurp("include/evq.h");
	if (!header)
		skip_all("include/evq.h not found: run from the source tree or set EVQ_SRCDIR");
	char *readme = slurp("README.md");
	CHECK(readme); /* the header is here, so the README must be too */

	blank_comments(header);
	blank_preprocessor(header);
	int n = find_functions(header, names);
	/* An empty list would make every check below vacuous. */
	CHECK(n > 0);
	diag("%d public functions declared in include/evq.h", n);

	for (int i = 0; i < n; i++) {
		const char *why = NULL;
		int man = man_ok(names[i], &why);
		int rd = mentions(readme, names[i]);
		ok(man && rd, "%s: man page man/man3/%s.3 and a mention in README.md",
		   names[i], names[i]);
		if (!man)
			diag("  %s: %s", names[i], why);
		if (!rd)
			diag("  %s: README.md does not mention it", names[i]);
	}
	free(header);
	free(readme);
	done();
}
