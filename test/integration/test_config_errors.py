"""Configuration errors and command-line handling: legate refuses a bad config with
exit code 1 and a message that names the file, line, column and field path, both
with --mode validate and in serve mode (where it binds nothing)."""

import os
import re
import socket
import subprocess
import unittest

from harness import (LEGATE_BIN, LegateTestCase, bootstrap, free_port, is_listening, run_legate,
                     static_cluster, tcp_listener, wait_until)

TCP_PROXY = "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy"
# An Envoy extension legate does not implement.
UNIMPLEMENTED = "type.googleapis.com/envoy.extensions.filters.network.redis_proxy.v3.RedisProxy"


def good_yaml(listener_port, admin_port, upstream_port=1):
    return """\
admin:
  address:
    socket_address: {{ address: 127.0.0.1, port_value: {admin} }}
static_resources:
  listeners:
  - name: main
    address:
      socket_address: {{ address: 127.0.0.1, port_value: {listener} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": {tcp}
          stat_prefix: main
          cluster: backend
  clusters:
  - name: backend
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: backend
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: 127.0.0.1, port_value: {upstream} }}
""".format(admin=admin_port, listener=listener_port, upstream=upstream_port, tcp=TCP_PROXY)


class ConfigErrorCase(LegateTestCase):
    """Helpers: write a config, run legate both ways, check the error and that nothing
    was bound."""

    def setUp(self):
        super().setUp()
        self.dir = self.tmpdir()
        self.listener_port = free_port()
        self.admin_port = free_port()

    def write(self, text, name="config.yaml"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def line_of(self, text, needle, occurrence=1):
        """1-based line of the occurrence-th line containing needle."""
        seen = 0
        for i, line in enumerate(text.splitlines(), 1):
            if needle in line:
                seen += 1
                if seen == occurrence:
                    return i
        raise AssertionError("%r not in config" % needle)

    def run_both_modes(self, path):
        """Runs validate and serve mode; both must exit 1. Returns both stderrs."""
        out = []
        for mode in ("validate", "serve"):
            addr_file = os.path.join(self.dir, "admin_address_" + mode)
            try:
                code, stdout, stderr = run_legate(
                    ["-c", path, "--mode", mode, "--admin-address-path", addr_file,
                     "--concurrency", "1"], timeout=10)
            except subprocess.TimeoutExpired:
                self.fail("legate --mode %s kept running with a bad config" % mode)
            self.assertEqual(code, 1, "--mode %s exit code; stderr:\n%s" % (mode, stderr))
            self.assertNotIn("started", stderr)
            self.assertFalse(os.path.exists(addr_file), "admin address written in %s mode" % mode)
            self.assertFalse(is_listening(self.listener_port), "listener port bound in %s mode" % mode)
            self.assertFalse(is_listening(self.admin_port), "admin port bound in %s mode" % mode)
            out.append(stderr)
        core = [l for l in out[0].splitlines() if l.strip()][-1]
        self.assertIn(core, out[1], "validate and serve report different errors")
        return out[0]

    def assertLocated(self, stderr, path, line, field_path, column=None):
        name = re.escape(os.path.basename(path))
        m = re.search(r"(\S*%s):(\d+):(\d+)" % name, stderr)
        self.assertIsNotNone(m, "no file:line:column in:\n%s" % stderr)
        self.assertTrue(m.group(1).endswith(os.path.basename(path)))
        self.assertEqual(int(m.group(2)), line, "wrong line in:\n%s" % stderr)
        if column is not None:
            self.assertEqual(int(m.group(3)), column, "wrong column in:\n%s" % stderr)
        else:
            self.assertGreaterEqual(int(m.group(3)), 1)
        if field_path:
            self.assertIn(field_path, stderr)


class BadConfigs(ConfigErrorCase):

    def test_malformed_yaml(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "    type: STATIC", "   type: STATIC")  # bad indentation inside the cluster
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "   type: STATIC"), None)
        self.assertIn("YAML", err)

    def test_malformed_yaml_flow(self):
        text = "static_resources:\n  clusters: [\n"
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertRegex(err, re.escape(os.path.basename(path)) + r":\d+:\d+")
        self.assertIn("YAML", err)

    def test_unknown_field_with_did_you_mean(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "    connect_timeout: 1s", "    conect_timeout: 1s")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "conect_timeout"),
                           "static_resources.clusters[0].conect_timeout", column=5)
        self.assertIn("did you mean 'connect_timeout'", err)

    def test_unknown_field_in_json(self):
        text = ('{"admin": {"address": {"socket_address": {"address": "127.0.0.1", '
                '"port_value": %d}}},\n "static_resources": {"clusters": [{"name": "c",\n'
                '  "bogus_field": 1}]}}\n' % self.admin_port)
        path = self.write(text, "config.json")
        err = self.run_both_modes(path)
        self.assertLocated(err, path, 3, "static_resources.clusters[0].bogus_field")

    def test_wrong_type(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "    connect_timeout: 1s", "    connect_timeout: [1, 2]")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "connect_timeout"),
                           "static_resources.clusters[0].connect_timeout")
        self.assertIn("Duration", err)

    def test_wrong_scalar_type(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "stat_prefix: main", "stat_prefix: {a: b}")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "stat_prefix"),
                           "static_resources.listeners[0].filter_chains[0].filters[0]"
                           ".typed_config.stat_prefix")

    def test_missing_required_cluster_name(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "  - name: backend\n    type: STATIC\n", "  - type: STATIC\n")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "- type: STATIC"),
                           "static_resources.clusters[0].name")

    def test_port_out_of_range(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "port_value: %d }" % self.listener_port, "port_value: 70000 }")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "70000"),
                           "static_resources.listeners[0].address.socket_address.port_value")
        self.assertIn("65535", err)

    def test_unimplemented_extension(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "name: envoy.filters.network.tcp_proxy", "name: envoy.filters.network.redis_proxy"
        ).replace(TCP_PROXY, UNIMPLEMENTED)
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "@type"),
                           "static_resources.listeners[0].filter_chains[0].filters[0].typed_config")
        self.assertIn("RedisProxy", err)
        self.assertIn("envoy.filters.network.redis_proxy", err)
        self.assertIn("does not implement", err)

    def test_unknown_cluster_in_tcp_proxy(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "cluster: backend", "cluster: nowhere")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertIn("static_resources.listeners[0].filter_chains[0].filters[0].typed_config.cluster", err)
        self.assertIn("nowhere", err)

    def test_unknown_cluster_in_tcp_proxy_names_file_and_line(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "cluster: backend", "cluster: nowhere")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "cluster: nowhere"),
                           "typed_config.cluster")

    def test_unsupported_cluster_type(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "type: STATIC", "type: EDS")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertIn("EDS", err)
        self.assertIn("static_resources.clusters[0]", err)
        self.assertIn("not implemented", err)

    def test_unsupported_cluster_type_names_file_line_and_field(self):
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "type: STATIC", "type: EDS")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "type: EDS"),
                           "static_resources.clusters[0].type")

    def test_load_balancing_policy_without_a_supported_policy(self):
        # Envoy skips policies it does not support; with none left, the cluster is
        # refused, naming load_balancing_policy where it is written.
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "    connect_timeout: 1s\n",
            "    connect_timeout: 1s\n"
            "    load_balancing_policy:\n"
            "      policies:\n"
            "      - typed_extension_config:\n"
            "          name: envoy.load_balancing_policies.pick_first\n"
            "          typed_config:\n"
            "            \"@type\": type.googleapis.com/"
            "envoy.extensions.load_balancing_policies.pick_first.v3.PickFirst\n")
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertLocated(err, path, self.line_of(text, "load_balancing_policy:"),
                           "static_resources.clusters[0].load_balancing_policy")
        self.assertIn("none of its policies is implemented by legate", err)
        self.assertIn("PickFirst", err)

    def two_listeners(self, name_a, name_b, port_b):
        text = good_yaml(self.listener_port, self.admin_port)
        head, sep, tail = text.partition("  clusters:\n")
        first = head[head.index("  - name: main"):]
        second = first.replace("name: main", "name: " + name_b).replace(
            "port_value: %d }" % self.listener_port, "port_value: %d }" % port_b).replace(
            "stat_prefix: main", "stat_prefix: second")
        return head.replace("name: main", "name: " + name_a) + second + sep + tail

    def test_duplicate_listener_name(self):
        text = self.two_listeners("same", "same", free_port())
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertIn("static_resources.listeners[1].name", err)
        self.assertIn("duplicate", err)

    def test_duplicate_listener_address(self):
        text = self.two_listeners("first", "second", self.listener_port)
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertIn("127.0.0.1:%d" % self.listener_port, err)
        self.assertIn("second", err)

    def test_unwritable_access_log_path(self):
        bad = os.path.join(self.dir, "no-such-dir", "access.log")
        text = good_yaml(self.listener_port, self.admin_port).replace(
            "          cluster: backend\n",
            "          cluster: backend\n          access_log:\n          - name: envoy.access_loggers.file\n"
            "            typed_config:\n              \"@type\": type.googleapis.com/envoy.extensions."
            "access_loggers.file.v3.FileAccessLog\n              path: %s\n" % bad)
        path = self.write(text)
        err = self.run_both_modes(path)
        self.assertIn("access_log[0].typed_config.path", err)
        self.assertIn(bad, err)

    def test_missing_config_file(self):
        missing = os.path.join(self.dir, "does-not-exist.yaml")
        code, _, err = run_legate(["-c", missing, "--mode", "validate"])
        self.assertEqual(code, 1)
        self.assertIn("does-not-exist.yaml", err)
        code, _, err = run_legate(["-c", missing])
        self.assertEqual(code, 1)
        self.assertIn("does-not-exist.yaml", err)

    def test_no_config_at_all(self):
        code, _, err = run_legate([])
        self.assertEqual(code, 1)
        self.assertIn("-c", err)


class GoodConfigs(ConfigErrorCase):

    def test_validate_exits_0_and_binds_nothing(self):
        text = good_yaml(self.listener_port, self.admin_port)
        path = self.write(text)
        # Hold both ports (bound, listening): a validate run that tried to bind would fail.
        holders = []
        for port in (self.listener_port, self.admin_port):
            s = socket.socket()
            self.addCleanup(s.close)
            s.bind(("127.0.0.1", port))
            s.listen(1)
            holders.append(s)
        addr_file = os.path.join(self.dir, "admin_address")
        code, out, err = run_legate(["-c", path, "--mode", "validate", "--admin-address-path", addr_file])
        self.assertEqual(code, 0, err)
        self.assertIn("OK", out)
        self.assertFalse(os.path.exists(addr_file))
        for s in holders:
            s.close()
        self.assertFalse(is_listening(self.listener_port))
        self.assertFalse(is_listening(self.admin_port))

    def test_validate_json_bootstrap(self):
        path = self.write('{"static_resources": {"clusters": [%s]}}' % (
            '{"name": "c", "type": "STATIC", "connect_timeout": "0.5s"}'), "config.json")
        code, out, err = run_legate(["-c", path, "--mode", "validate"])
        self.assertEqual(code, 0, err)

    def test_config_yaml_merged_over_file(self):
        path = self.write(good_yaml(0, 0))
        extra = ("static_resources: {listeners: [{name: extra, address: {socket_address: "
                 "{address: 127.0.0.1, port_value: 0}}, filter_chains: [{filters: [{name: "
                 "envoy.filters.network.tcp_proxy, typed_config: {'@type': %s, stat_prefix: extra, "
                 "cluster: backend}}]}]}]}" % TCP_PROXY)
        code, out, err = run_legate(["-c", path, "--config-yaml", extra, "--mode", "validate"])
        self.assertEqual(code, 0, err)
        with open(path) as f:
            lg = self.start_legate(f.read(), args=["--config-yaml", extra])
        self.assertEqual(sorted(lg.listeners), ["extra", "main"])
        self.assertNotEqual(lg.port("extra"), lg.port("main"))
        for name in ("main", "extra"):
            self.assertTrue(is_listening(lg.port(name)))
        status, body = lg.admin_get("/server_info")
        self.assertEqual(status, 200)
        self.assertIn("stat_prefix: extra", body)

    def test_config_yaml_error_is_located(self):
        code, _, err = run_legate(["--config-yaml", "static_resources: {clusters: [{nme: c}]}",
                                   "--mode", "validate"])
        self.assertEqual(code, 1)
        self.assertRegex(err, r"--config-yaml:1:\d+")
        self.assertIn("static_resources.clusters[0].nme", err)


class BindErrors(ConfigErrorCase):

    def hold(self, port):
        s = socket.socket()
        self.addCleanup(s.close)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return s

    def test_listener_port_in_use(self):
        self.hold(self.listener_port)
        path = self.write(good_yaml(self.listener_port, self.admin_port))
        addr_file = os.path.join(self.dir, "admin_address")
        code, _, err = run_legate(["-c", path, "--admin-address-path", addr_file,
                                   "--concurrency", "2"])
        self.assertEqual(code, 1, err)
        self.assertIn("Address already in use", err)
        self.assertIn("127.0.0.1:%d" % self.listener_port, err)
        self.assertIn("main", err)
        self.assertFalse(is_listening(self.admin_port))
        self.assertFalse(os.path.exists(addr_file))

    def test_admin_port_in_use(self):
        self.hold(self.admin_port)
        path = self.write(good_yaml(self.listener_port, self.admin_port))
        code, _, err = run_legate(["-c", path, "--concurrency", "2"])
        self.assertEqual(code, 1, err)
        self.assertIn("Address already in use", err)
        self.assertIn("127.0.0.1:%d" % self.admin_port, err)
        self.assertIn("admin", err)
        # The listeners it had already bound are released.
        self.assertFalse(is_listening(self.listener_port))


class CommandLine(LegateTestCase):

    def assertRefused(self, args, *needles):
        code, out, err = run_legate(args)
        self.assertEqual(code, 1, "%r: stdout %r stderr %r" % (args, out, err))
        for n in needles:
            self.assertIn(n, err)
        return err

    def test_bad_concurrency(self):
        self.assertRefused(["--concurrency", "abc", "--mode", "validate"], "--concurrency", "abc")
        self.assertRefused(["--concurrency", "0"], "--concurrency")
        self.assertRefused(["--concurrency", "-3"], "--concurrency")

    def test_bad_mode(self):
        self.assertRefused(["--mode", "nope"], "--mode", "nope")

    def test_unknown_flag(self):
        self.assertRefused(["--no-such-flag"], "--no-such-flag")

    def test_flag_without_value(self):
        self.assertRefused(["-c"], "-c")

    def test_bad_drain_time(self):
        self.assertRefused(["--drain-time-s", "soon"], "--drain-time-s")

    def test_version(self):
        code, out, err = run_legate(["--version"])
        self.assertEqual(code, 0, err)
        self.assertRegex(out, r"legate.*\d+\.\d+")

    def test_help(self):
        code, out, err = run_legate(["--help"])
        self.assertEqual(code, 0, err)
        for flag in ("--config-path", "--config-yaml", "--concurrency", "--mode", "--drain-time-s",
                     "--admin-address-path"):
            self.assertIn(flag, out)
        code2, out2, _ = run_legate(["-h"])
        self.assertEqual((code2, out2), (0, out))


if __name__ == "__main__":
    unittest.main()
