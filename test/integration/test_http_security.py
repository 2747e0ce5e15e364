"""Request smuggling and protocol violations on the downstream HTTP/1.1 codec: each is
answered with 400 (431 for header limits) and the connection closes, the protocol error
is counted, the bad request never reaches the upstream, and legate keeps serving. Also
path normalization, merge_slashes and escaped-slash rejection."""

import unittest

from harness import (HttpUpstream, LegateTestCase, http_bootstrap, http_get, raw_request,
                     static_cluster)

PREFIX = "http.ingress."


class SecurityCase(LegateTestCase):
    HCM = {
        "max_request_headers_kb": 8,
        "common_http_protocol_options": {"max_headers_count": 20,
                                         "headers_with_underscores_action": "REJECT_REQUEST"},
        "normalize_path": True,
        "merge_slashes": True,
        "path_with_escaped_slashes_action": "REJECT_REQUEST",
    }

    def setUp(self):
        super().setUp()
        self.up = self.server(HttpUpstream)
        self.lg = self.start_legate(http_bootstrap([static_cluster("up", [self.up.port])],
                                                   **self.HCM))
        self.port = self.lg.port("http")

    def assert_still_serving(self, before=0):
        status, _, body, _ = http_get(self.port, "/still-ok")
        self.assertEqual(status, 200)
        self.assertEqual(self.up.count(), before + 1)
        self.assertEqual(self.up.last().path, "/still-ok")

    def rejected(self, raw, status=400, protocol_error=True, closed=True, reaches_upstream=False):
        """Sends raw; asserts the status, the close, the stat, that the upstream never saw a
        request, and that a normal request still works afterwards."""
        resp, was_closed = raw_request(self.port, raw)
        self.assertIsNotNone(resp, "no response before the connection closed")
        self.assertEqual(resp.status, status, "%r -> %r" % (raw[:80], resp.start))
        if closed:
            self.assertTrue(was_closed, "connection left open after %d" % resp.status)
            self.assertEqual((resp.header("connection") or "close").lower(), "close")
        if protocol_error:
            self.lg.wait_for_stat(PREFIX + "downstream_cx_protocol_error", lambda v: v == 1)
        if not reaches_upstream:
            self.assertEqual(self.up.count(), 0, "the bad request reached the upstream")
        self.assert_still_serving()
        return resp


class Smuggling(SecurityCase):
    def test_content_length_and_transfer_encoding(self):
        self.rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n"
                      b"Host: a\r\n\r\n")

    def test_two_different_content_lengths(self):
        self.rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
                      b"Content-Length: 6\r\n\r\nhello!")

    def test_content_length_list_with_different_values(self):
        self.rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!")

    def test_non_numeric_content_length(self):
        self.rejected(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello")

    def test_transfer_encoding_gzip_chunked(self):
        # Envoy answers unknown transfer-codings with 501 Not Implemented; 400 is fine too.
        resp, closed = raw_request(self.port, b"POST / HTTP/1.1\r\nHost: a\r\n"
                                   b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
        self.assertIn(resp.status, (400, 501))
        self.assertTrue(closed)
        self.lg.wait_for_stat(PREFIX + "downstream_cx_protocol_error", lambda v: v == 1)
        self.assertEqual(self.up.count(), 0)
        self.assert_still_serving()

    def test_invalid_chunk_size(self):
        self.rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"zz\r\nhello\r\n0\r\n\r\n")

    def test_chunk_size_overflow(self):
        self.rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"fffffffffffffffff1\r\nhello\r\n0\r\n\r\n")


class MalformedHeaders(SecurityCase):
    def test_obs_fold(self):
        self.rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: first\r\n  second\r\n\r\n")

    def test_space_before_colon(self):
        self.rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX-Space : v\r\n\r\n")

    def test_nul_in_header_value(self):
        self.rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX-Nul: a\x00b\r\n\r\n")

    def test_bare_lf_line_endings(self):
        self.rejected(b"GET / HTTP/1.1\nHost: a\nX-A: b\n\n")

    def test_missing_host_in_http11(self):
        self.rejected(b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n")

    def test_header_section_over_max_request_headers_kb(self):
        headers = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(16))
        self.rejected(b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n", status=431)

    def test_header_section_just_under_the_limit_passes(self):
        headers = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(6))
        resp, closed = raw_request(self.port, b"GET /big HTTP/1.1\r\nHost: a\r\n" + headers
                                   + b"\r\n", close_timeout=0)
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.up.last().header("x-big-5"), "v" * 1000)

    def test_more_than_max_headers_count(self):
        headers = b"".join(b"X-H%d: v\r\n" % i for i in range(25))
        self.rejected(b"GET / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n", status=431)

    def test_headers_with_underscores_rejected(self):
        self.rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX_Under: v\r\n\r\n")


class Paths(SecurityCase):
    def test_dot_segments_are_normalized(self):
        for raw_path, want in ((b"/a/../b", "/b"), (b"/a/./b/../c?x=/../y", "/a/c?x=/../y"),
                               (b"/../../etc", "/etc")):
            resp, _ = raw_request(self.port, b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % raw_path,
                                     close_timeout=0)
            self.assertEqual(resp.status, 200)
            self.assertEqual(self.up.last().path, want)

    def test_merge_slashes(self):
        resp, _ = raw_request(self.port, b"GET //a///b//c HTTP/1.1\r\nHost: a\r\n\r\n",
                                 close_timeout=0)
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.up.last().path, "/a/b/c")

    def test_escaped_slash_rejected(self):
        for raw_path in (b"/a%2Fb", b"/a%2fb", b"/a%5Cb"):
            resp, _ = raw_request(self.port, b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % raw_path,
                                     close_timeout=0)
            self.assertEqual(resp.status, 400, raw_path)
        self.assertEqual(self.up.count(), 0)
        self.assert_still_serving()

    def test_escaped_other_characters_pass(self):
        resp, _ = raw_request(self.port, b"GET /a%20b HTTP/1.1\r\nHost: a\r\n\r\n",
                                 close_timeout=0)
        self.assertEqual(resp.status, 200)
        self.assertEqual(self.up.last().path, "/a%20b")



class EscapedSlashRedirect(SecurityCase):
    """UNESCAPE_AND_REDIRECT: the client is sent to the unescaped, normalized path."""
    HCM = dict(SecurityCase.HCM, path_with_escaped_slashes_action="UNESCAPE_AND_REDIRECT")

    def test_redirected_to_the_unescaped_path(self):
        resp, _ = raw_request(self.port, b"GET /a%2Fb/..%2fc?q=%2F HTTP/1.1\r\nHost: a\r\n\r\n",
                              close_timeout=0)
        self.assertEqual(resp.status, 307)
        # Unescaped in the path only (not the query), then normalized (dot segments).
        self.assertEqual(resp.header("location"), "/a/c?q=%2F")
        self.assertEqual(self.up.count(), 0)
        self.assertEqual(self.lg.stat(PREFIX + "downstream_rq_redirected_with_normalized_path"), 1)
        status, _, _, _ = http_get(self.port, "/a/c?q=%2F")
        self.assertEqual(status, 200)
        self.assertEqual(self.up.last().path, "/a/c?q=%2F")


if __name__ == "__main__":
    unittest.main()


class Slowloris(SecurityCase):
    """Headers trickled forever end at request_headers_timeout with a 408 and a close."""
    HCM = dict(SecurityCase.HCM, request_headers_timeout="0.5s")

    def test_incomplete_headers_get_408_and_close(self):
        # The headers never end (no blank line): only the timeout can answer.
        resp, was_closed = raw_request(self.port, b"GET /slow HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n",
                                       timeout=10)
        self.assertIsNotNone(resp, "no reply: the request headers timeout did not fire")
        self.assertEqual(resp.status, 408)
        self.assertTrue(was_closed)
        self.lg.wait_for_stat(PREFIX + "downstream_rq_header_timeout", lambda v: v == 1)
        self.assertEqual(self.up.count(), 0)
        self.assert_still_serving()
