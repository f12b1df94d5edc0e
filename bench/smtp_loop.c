/*
 * The baseline of bench/60_mail.sh: a plain libcurl loop sending the same
 * kind of message over SMTP, one handle per mail as popug does.
 *   smtp_loop URL COUNT
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct
{
	const char *data;
	size_t		left;
} Upload;

static size_t
feed(char *buf, size_t size, size_t n, void *arg)
{
	Upload	   *u = arg;
	size_t		len = size * n < u->left ? size * n : u->left;

	memcpy(buf, u->data, len);
	u->data += len;
	u->left -= len;
	return len;
}

int
main(int argc, char **argv)
{
	const char *msg = "Date: Tue, 24 Nov 2026 00:00:00 +0000\r\nMessage-ID: <x@popug>\r\n"
		"From: <popug@example.com>\r\nTo: <loop@example.com>\r\nSubject: popug payout for 2026-11-23\r\n"
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
		"Hello,\r\n\r\npopug paid you 12.50 for 2026-11-23.\r\n";
	int			count = argc > 2 ? atoi(argv[2]) : 1000;
	int			failed = 0;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = 0; i < count; i++)
	{
		CURL	   *c = curl_easy_init();
		struct curl_slist *rcpt = curl_slist_append(NULL, "<loop@example.com>");
		Upload		u = {msg, strlen(msg)};

		curl_easy_setopt(c, CURLOPT_URL, argv[1]);
		curl_easy_setopt(c, CURLOPT_MAIL_FROM, "<popug@example.com>");
		curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
		curl_easy_setopt(c, CURLOPT_READFUNCTION, feed);
		curl_easy_setopt(c, CURLOPT_READDATA, &u);
		curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
		if (curl_easy_perform(c) != CURLE_OK)
			failed++;
		curl_slist_free_all(rcpt);
		curl_easy_cleanup(c);
	}
	curl_global_cleanup();
	return failed ? 1 : 0;
}
