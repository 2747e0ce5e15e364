"""Access logs end to end: filters decide which streams are logged, lines are written by
the buffered writer (within the flush interval, and all of them on clean shutdown)."""

import json
import os
import signal
import unittest

from harness import (FILE_LOG_TYPE, HttpUpstream, LegateTestCase, http_bootstrap, http_get,
                     run_legate, static_cluster, wait_until)


def file_log(path, fmt, log_filter=None):
    entry = {
        "name": "envoy.access_loggers.file",
        "typed_config": {
            "@type": FILE_LOG_TYPE,
            "path": path,
            "log_format": {"text_format_source": {"inline_string": fmt}},
        },
    }
    if log_filter is not None:
        entry["filter"] = log_filter
    return entry


ONLY_5XX = {"status_code_filter": {"comparison": {"op": "GE", "value": {
    "default_value": 500, "runtime_key": "access_log.only_5xx"}}}}


class AccessLogCase(LegateTestCase):
    def read_lines(self, path):
        try:
            with open(path) as f:
                return f.read().splitlines()
        except OSError:
            return []

    def start(self, access_log):
        up = self.server(HttpUpstream)
        lg = self.start_legate(http_bootstrap([static_cluster("up", [up.port])],
                                              access_log=access_log))
        return lg, lg.port("http")

    def test_status_code_filter_logs_only_5xx(self):
        log_path = os.path.join(self.tmpdir(), "errors.log")
        all_path = os.path.join(self.tmpdir(), "all.log")
        lg, port = self.start([
            file_log(log_path, "%RESPONSE_CODE% %REQ(:PATH)% %RESPONSE_CODE_DETAILS% "
                               "%UPSTREAM_REQUEST_ATTEMPT_COUNT%\n", ONLY_5XX),
            file_log(all_path, "%RESPONSE_CODE% %REQUEST_DURATION% %RESPONSE_DURATION% "
                               "%RESPONSE_TX_DURATION% %REQUESTED_SERVER_NAME%\n"),
        ])
        for path, code in (("/ok", 200), ("/a/status/503", 503), ("/ok/2", 200), ("/b/status/503", 503)):
            status, _, _, _ = http_get(port, path)
            self.assertEqual(status, code)
        # Lines reach the file within the flush interval (1 s), without shutdown.
        wait_until(lambda: len(self.read_lines(all_path)) >= 4, 10, what="4 lines in all.log")
        self.assertEqual(self.read_lines(log_path),
                         ["503 /a/status/503 via_upstream 1", "503 /b/status/503 via_upstream 1"])
        for line in self.read_lines(all_path):
            code, rq, rs, tx, sni = line.split(" ")
            self.assertIn(code, ("200", "503"))
            self.assertRegex(rq, r"^\d+$", line)
            self.assertRegex(rs, r"^\d+$", line)
            self.assertRegex(tx, r"^\d+$", line)
            self.assertLessEqual(int(rq), int(rs), line)
            self.assertEqual(sni, "-", line)
        self.assertGreaterEqual(lg.stat("filesystem.write_buffered"), 6)

    def test_lines_buffered_at_shutdown_are_written(self):
        log_path = os.path.join(self.tmpdir(), "access.log")
        lg, port = self.start([file_log(log_path, "%RESPONSE_CODE% %REQ(:PATH)%\n")])
        for n in range(20):
            status, _, _, _ = http_get(port, "/r/%d" % n)
            self.assertEqual(status, 200)
        # Straight to a clean stop: no waiting for the flush timer.
        self.assertEqual(lg.stop(signal.SIGTERM), 0)
        self.assertEqual(self.read_lines(log_path), ["200 /r/%d" % n for n in range(20)])

    def test_unimplemented_filter_is_refused_naming_the_field(self):
        log_path = os.path.join(self.tmpdir(), "access.log")
        config = http_bootstrap([static_cluster("up", [1])], access_log=[
            file_log(log_path, "%RESPONSE_CODE%\n", {"traceable_filter": {}})])
        config_path = os.path.join(self.tmpdir(), "config.json")
        with open(config_path, "w") as f:
            json.dump(config, f)
        code, _, err = run_legate(["-c", config_path, "--mode", "validate"])
        self.assertNotEqual(code, 0)
        self.assertIn("access_log[0].filter.traceable_filter", err)


if __name__ == "__main__":
    unittest.main()
