/*-------------------------------------------------------------------------
 *
 * input.c
 *		Checks of what callers hand popug, one definition of each rule for
 *		every feature: text shown as one line or as paragraphs, email
 *		addresses, days.
 *
 * Text rules look at characters: Unicode code points when the database
 * encoding is UTF8, only ASCII characters in other encodings.
 *	 control characters	C0 (U+0000-U+001F), DEL and C1 (U+0080-U+009F)
 *	 bidi controls		embeddings, overrides and isolates (U+202A-U+202E,
 *						U+2066-U+2069): they reorder what is displayed after
 *						them, beyond the field they are in (the marks
 *						U+200E, U+200F and U+061C are fine)
 *	 blanks				white space and the characters that show nothing by
 *						themselves: zero-width spaces and joiners, the BOM,
 *						bidi marks and controls, variation selectors, fillers
 * A line (a title, a name) has no control character, no line or paragraph
 * separator and no bidi control.  Paragraphs (a description) may also hold
 * tabs, line feeds, carriage returns and U+2028/U+2029, but no other
 * control character and no bidi control either.  popug_trim takes the
 * blanks off both ends of a title, so a title of blanks only is empty.
 *
 * Email addresses are plain ASCII, since popug sends mail without
 * SMTPUTF8: a dot-atom local part of at most 64 characters, "@", a domain
 * of dot-separated labels (letters, digits, inner hyphens, at most 63
 * characters each) whose last label has a letter, at most 254 characters
 * in all.  No quoted local parts, comments or address literals; an
 * international domain is written in its xn-- form.
 *
 * Days are finite and within 0001-01-01 .. 9999-12-31: every day popug
 * computes with is also a timestamp in any time zone, a day later or
 * earlier included.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "input.h"

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"

/* Stands for a character outside ASCII in a database that is not UTF8. */
#define UNCLASSIFIED_CHAR ((pg_wchar) 0x110000)

/* Characters of a value quoted in a message. */
#define QUOTE_MAX_CHARS 64

#define EMAIL_MAX_LEN 254
#define EMAIL_LOCAL_MAX_LEN 64
#define EMAIL_LABEL_MAX_LEN 63

typedef struct CharRange
{
	pg_wchar	lo;
	pg_wchar	hi;
} CharRange;

/* White space, and characters that show nothing by themselves. */
static const CharRange blanks[] = {
	{0x0009, 0x000D}, {0x0020, 0x0020}, {0x0085, 0x0085}, {0x00A0, 0x00A0},
	{0x00AD, 0x00AD}, {0x034F, 0x034F}, {0x061C, 0x061C}, {0x115F, 0x1160},
	{0x1680, 0x1680}, {0x17B4, 0x17B5}, {0x180B, 0x180F}, {0x2000, 0x200F},
	{0x2028, 0x202F}, {0x205F, 0x206F}, {0x2800, 0x2800}, {0x3000, 0x3000},
	{0x3164, 0x3164}, {0xFE00, 0xFE0F}, {0xFEFF, 0xFEFF}, {0xFFA0, 0xFFA0},
	{0x1BCA0, 0x1BCA3}, {0x1D173, 0x1D17A}, {0xE0000, 0xE0FFF}
};

/*
 * The character at s and its length in bytes: its code point in a UTF8
 * database; elsewhere its byte if ASCII, else UNCLASSIFIED_CHAR.
 */
static pg_wchar
char_at(const char *s, int *len)
{
	if (GetDatabaseEncoding() == PG_UTF8)
	{
		*len = pg_utf_mblen((const unsigned char *) s);
		return utf8_to_unicode((const unsigned char *) s);
	}
	*len = pg_mblen(s);
	return (*len == 1 && !IS_HIGHBIT_SET(*s)) ? (pg_wchar) *s : UNCLASSIFIED_CHAR;
}

/* C0, DEL and C1 control characters. */
static bool
is_control(pg_wchar c)
{
	return c < 0x20 || (c >= 0x7F && c <= 0x9F);
}

/* Bidi embeddings, overrides and isolates (not the marks). */
static bool
is_bidi_control(pg_wchar c)
{
	return (c >= 0x202A && c <= 0x202E) || (c >= 0x2066 && c <= 0x2069);
}

/* White space, or a character that shows nothing by itself. */
static bool
is_blank(pg_wchar c)
{
	for (int i = 0; i < lengthof(blanks); i++)
		if (c >= blanks[i].lo && c <= blanks[i].hi)
			return true;
	return false;
}

/*
 * Trims blanks (see the top of this file) at both ends of s, in place;
 * returns the first character kept.
 */
char *
popug_trim(char *s)
{
	char	   *start = NULL;
	char	   *end = s;
	int			len;

	for (char *p = s; *p; p += len)
		if (!is_blank(char_at(p, &len)))
		{
			if (start == NULL)
				start = p;
			end = p + len;
		}
	*end = '\0';
	return start ? start : end;
}

/*
 * Checks text shown as one line (paragraphs false) or as paragraphs.
 * Returns NULL when it passes, else a sentence that says what is wrong.
 */
const char *
popug_text_problem(const char *s, bool paragraphs)
{
	int			len;
	int			pos = 1;

	for (const char *p = s; *p; p += len, pos++)
	{
		pg_wchar	c = char_at(p, &len);

		if (paragraphs && (c == '\t' || c == '\n' || c == '\r' ||
						   c == 0x2028 || c == 0x2029))
			continue;
		if (is_control(c))
			return psprintf("Character %d is the control character U+%04X.", pos, c);
		if (c == 0x2028 || c == 0x2029)
			return psprintf("Character %d (U+%04X) breaks the line.", pos, c);
		if (is_bidi_control(c))
			return psprintf("Character %d is the bidirectional control U+%04X, which reorders the text displayed after it.",
							pos, c);
	}
	return NULL;
}

/*
 * s in double quotes for a message: at most QUOTE_MAX_CHARS characters,
 * controls and invisible characters written as <U+XXXX>.
 */
char *
popug_quote(const char *s)
{
	StringInfoData buf;
	const char *p = s;
	int			len;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '"');
	for (int n = 0; *p && n < QUOTE_MAX_CHARS; p += len, n++)
	{
		pg_wchar	c = char_at(p, &len);

		if (is_control(c) || (is_blank(c) && c != ' '))
			appendStringInfo(&buf, "<U+%04X>", c);
		else
			appendBinaryStringInfo(&buf, p, len);
	}
	appendStringInfoString(&buf, *p ? "...\"" : "\"");
	return buf.data;
}

/* ASCII letter or digit, whatever the locale. */
static bool
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9');
}

/* A character of an unquoted local part besides dots (RFC 5322 atext). */
static bool
is_atext(char c)
{
	return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+/=?^_`{|}~-", c) != NULL);
}

/* Checks the local part of an address, [addr, at). */
static const char *
email_local_problem(const char *addr, const char *at)
{
	if (at == addr)
		return "The part before \"@\" is empty.";
	if (at - addr > EMAIL_LOCAL_MAX_LEN)
		return psprintf("The part before \"@\" has more than %d characters.",
						EMAIL_LOCAL_MAX_LEN);
	for (const char *p = addr; p < at; p++)
	{
		if (*p == '.' && (p == addr || p + 1 == at || p[1] == '.'))
			return "The part before \"@\" starts or ends with a dot, or has two in a row.";
		if (*p != '.' && !is_atext(*p))
			return psprintf("The part before \"@\" has \"%c\", which needs quoting (popug takes no quoted addresses).",
							*p);
	}
	return NULL;
}

/* Checks the domain of an address, after its "@". */
static const char *
email_domain_problem(const char *domain, bool dotted_domain)
{
	const char *p = domain;
	int			labels = 0;
	bool		letter = false;

	for (;;)
	{
		const char *start = p;

		letter = false;
		for (; is_alnum(*p) || *p == '-'; p++)
			letter |= !(*p >= '0' && *p <= '9') && *p != '-';
		if (*p != '\0' && *p != '.')
			return psprintf("The domain has \"%c\"; a domain has letters, digits, hyphens and dots.", *p);
		if (p == start)
			return "The domain is empty, or starts or ends with a dot, or has two in a row.";
		if (p - start > EMAIL_LABEL_MAX_LEN)
			return psprintf("A part of the domain has more than %d characters.",
							EMAIL_LABEL_MAX_LEN);
		if (*start == '-' || p[-1] == '-')
			return "A part of the domain starts or ends with a hyphen.";
		labels++;
		if (*p == '\0')
			break;
		p++;
	}
	if (dotted_domain && labels < 2)
		return "The domain has no dot; use a full domain name such as example.com.";
	if (!letter)
		return "The domain ends in a number; popug takes domain names, not addresses.";
	return NULL;
}

/*
 * Checks an email address (see the top of this file); dotted_domain asks
 * for a domain of two labels or more, as a recipient's is (a sender may
 * be popug@localhost).  Returns NULL when it passes, else a sentence that
 * says what is wrong.
 */
const char *
popug_email_problem(const char *addr, bool dotted_domain)
{
	const char *at;
	size_t		len = strlen(addr);

	for (const char *p = addr; *p; p++)
	{
		if (IS_HIGHBIT_SET(*p))
			return "It has a character outside ASCII; popug sends mail without SMTPUTF8 (write an international domain in its xn-- form).";
		if ((unsigned char) *p <= ' ' || *p == 0x7F)
			return "It has a space or a control character.";
	}
	if (len == 0)
		return "It is empty.";
	if (len > EMAIL_MAX_LEN)
		return psprintf("It has %d characters; an address has at most %d.",
						(int) Min(len, INT_MAX), EMAIL_MAX_LEN);
	at = strchr(addr, '@');
	if (at == NULL)
		return "It has no \"@\".";
	if (strchr(at + 1, '@') != NULL)
		return "It has more than one \"@\".";
	if (email_local_problem(addr, at) != NULL)
		return email_local_problem(addr, at);
	return email_domain_problem(at + 1, dotted_domain);
}

/* Raises 22023 unless addr is an address mail can be sent to. */
void
popug_check_email(const char *addr)
{
	const char *problem = popug_email_problem(addr, true);

	if (problem != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed email address %s", popug_quote(addr)),
				 errdetail_internal("%s", problem),
				 errhint("Use a plain ASCII address such as name@example.com.")));
}

/*
 * Raises 22023 unless day is finite and within 0001-01-01 .. 9999-12-31;
 * name is the argument's, for the message.
 */
void
popug_check_day(DateADT day, const char *name)
{
	if (DATE_NOT_FINITE(day))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite date, not %s", name,
						DATE_IS_NOBEGIN(day) ? "-infinity" : "infinity"),
				 errhint("Give a day from 0001-01-01 to 9999-12-31.")));
	if (day < date2j(1, 1, 1) - POSTGRES_EPOCH_JDATE ||
		day > date2j(9999, 12, 31) - POSTGRES_EPOCH_JDATE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s %s is out of range", name,
						DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(day)))),
				 errdetail("popug works with days from 0001-01-01 to 9999-12-31."),
				 errhint("Give a day in that range.")));
}
