"""DNS discovery against a real DNS server: dnsmasq on a loopback port, driven by the
test (its hosts file rewritten and reloaded with SIGHUP). STRICT_DNS and LOGICAL_DNS
clusters follow the answers; requests in flight to a host that leaves finish; a failing
DNS server keeps the last answer."""

import os
import pwd
import grp
import shutil
import signal
import socket
import subprocess
import threading
import unittest

from harness import (HttpUpstream, LegateTestCase, free_port, http_bootstrap, http_get, route,
                     route_config, virtual_host, wait_until)

DNSMASQ = shutil.which("dnsmasq") or ("/usr/sbin/dnsmasq" if os.path.exists("/usr/sbin/dnsmasq")
                                      else None)
CARES_TYPE = "type.googleapis.com/envoy.extensions.network.dns_resolver.cares.v3.CaresDnsResolverConfig"
NAME = "svc.legate.test"


class Dnsmasq:
    """dnsmasq answering only from a hosts file the test rewrites."""

    def __init__(self, tmpdir):
        self.hosts_path = os.path.join(tmpdir, "dns_hosts")
        self.log_path = os.path.join(tmpdir, "dnsmasq.log")
        self.write({})
        self.proc = None
        for _ in range(5):  # a port picked free may be taken by the time dnsmasq binds
            self.port = free_port()
            user = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(os.getgid()).gr_name
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen(
                    [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
                     "--port=%d" % self.port, "--listen-address=127.0.0.1", "--bind-interfaces",
                     "--no-resolv", "--no-hosts", "--addn-hosts=" + self.hosts_path,
                     "--local=/legate.test/", "--pid-file=", "--user=" + user,
                     "--group=" + group, "--log-facility=-", "--log-queries"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            if self.wait_answering():
                return
            self.stop()
        raise AssertionError("dnsmasq did not start: " + open(self.log_path).read()[-2000:])

    def write(self, names):
        """names: {name: [ip, ...]}"""
        tmp = self.hosts_path + ".tmp"
        with open(tmp, "w") as f:
            for name, ips in names.items():
                for ip in ips:
                    f.write("%s %s\n" % (ip, name))
        os.rename(tmp, self.hosts_path)

    def set(self, names):
        self.write(names)
        self.proc.send_signal(signal.SIGHUP)

    def query_a(self, name):
        """The A records dnsmasq gives for name (a raw query, so the test sees what legate sees)."""
        import struct
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.5)
        try:
            qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
            s.sendto(struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + qname + struct.pack(">HH", 1, 1),
                     ("127.0.0.1", self.port))
            data = s.recv(1024)
        except OSError:
            return None
        finally:
            s.close()
        count = struct.unpack(">H", data[6:8])[0]
        off = 12 + len(qname) + 4
        ips = []
        for _ in range(count):
            off += 2 if data[off] & 0xC0 == 0xC0 else len(qname)
            rtype, _, _, rdlen = struct.unpack(">HHIH", data[off:off + 10])
            off += 10
            if rtype == 1:
                ips.append(socket.inet_ntoa(data[off:off + rdlen]))
            off += rdlen
        return sorted(ips)

    def wait_answering(self, timeout=5.0):
        try:
            wait_until(lambda: self.proc.poll() is None and self.query_a("probe.legate.test") is not None,
                       timeout, what="dnsmasq answering")
            return True
        except AssertionError:
            return False

    def wait_answer(self, name, ips, timeout=5.0):
        wait_until(lambda: self.query_a(name) == sorted(ips), timeout,
                   what="dnsmasq answering %s with %s" % (name, ips))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def dns_cluster(name, port, dns_port, type_="STRICT_DNS", **extra):
    c = {
        "name": name,
        "type": type_,
        "connect_timeout": "1s",
        "dns_refresh_rate": "0.1s",
        "typed_dns_resolver_config": {
            "name": "envoy.network.dns_resolver.cares",
            "typed_config": {"@type": CARES_TYPE, "resolvers": [
                {"socket_address": {"address": "127.0.0.1", "port_value": dns_port}}]},
        },
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": NAME, "port_value": port}}}}]}]},
    }
    c.update(extra)
    return c


@unittest.skipUnless(DNSMASQ, "dnsmasq (Debian dnsmasq-base) is not installed")
class DnsDiscoveryTest(LegateTestCase):
    def setUp(self):
        super().setUp()
        self.dns = Dnsmasq(self.tmpdir())
        self.addCleanup(self.dns.stop)
        # Upstreams on three loopback addresses, one port.
        self.ups = {"127.0.0.2": self.server(HttpUpstream, name="a", host="127.0.0.2")}
        port = self.ups["127.0.0.2"].port
        for ip, n in (("127.0.0.3", "b"), ("127.0.0.4", "c")):
            self.ups[ip] = self.server(HttpUpstream, name=n, host=ip, port=port)
        self.up_port = port

    def who(self, lg):
        status, headers, _, _ = http_get(lg.port("http"), "/")
        self.assertEqual(status, 200)
        return dict((k.lower(), v) for k, v in headers)["x-upstream"]

    def switch(self, lg, names, stat_cluster="dns"):
        before = lg.stat("cluster.%s.membership_change" % stat_cluster)
        self.dns.set({NAME: names})
        self.dns.wait_answer(NAME, names)
        lg.wait_for_stat("cluster.%s.membership_change" % stat_cluster, lambda v: v > before)

    def test_strict_dns_follows_the_answers(self):
        self.dns.set({NAME: ["127.0.0.2"]})
        self.dns.wait_answer(NAME, ["127.0.0.2"])
        lg = self.start_legate(http_bootstrap([dns_cluster("dns", self.up_port, self.dns.port,
                                                           dns_lookup_family="V4_ONLY")]))
        # Ready means the first answer is in: the very first request has a host.
        self.assertEqual({self.who(lg) for _ in range(5)}, {"a"})
        self.assertEqual(lg.stat("cluster.dns.membership_total"), 1)

        self.switch(lg, ["127.0.0.3", "127.0.0.4"])
        self.assertEqual(lg.stat("cluster.dns.membership_total"), 2)
        seen = [self.who(lg) for _ in range(10)]
        self.assertEqual(set(seen), {"b", "c"})  # round robin over both, nothing to a
        self.assertEqual(seen.count("b"), 5)

        self.switch(lg, ["127.0.0.4"])
        self.assertEqual({self.who(lg) for _ in range(5)}, {"c"})
        self.assertGreaterEqual(lg.stat("cluster.dns.update_success"), 3)  # first + two changes
        self.assertEqual(lg.stat("cluster.dns.update_failure"), 0)

    def test_auto_family_falls_back_to_ipv4(self):
        # dnsmasq has no AAAA for the name: AUTO (the default) asks for IPv6, gets
        # nothing, and takes the A records.
        self.dns.set({NAME: ["127.0.0.3"]})
        self.dns.wait_answer(NAME, ["127.0.0.3"])
        lg = self.start_legate(http_bootstrap([dns_cluster("dns", self.up_port, self.dns.port)]))
        self.assertEqual({self.who(lg) for _ in range(3)}, {"b"})

    def test_in_flight_request_to_a_removed_host_finishes(self):
        release = threading.Event()
        a = self.ups["127.0.0.2"]

        def slow(req, a=a):
            if req.path == "/slow":
                release.wait(10)
            return a.default_handler(req)
        a.handler = slow
        self.dns.set({NAME: ["127.0.0.2"]})
        self.dns.wait_answer(NAME, ["127.0.0.2"])
        lg = self.start_legate(http_bootstrap([dns_cluster("dns", self.up_port, self.dns.port,
                                                           dns_lookup_family="V4_ONLY")]))
        self.assertEqual(self.who(lg), "a")  # leaves an idle pooled connection to a
        result = {}

        def slow_request():
            result["r"] = http_get(lg.port("http"), "/slow")
        t = threading.Thread(target=slow_request, daemon=True)
        t.start()
        wait_until(lambda: a.count() >= 2, 5, what="the slow request at a")

        self.switch(lg, ["127.0.0.3"])
        self.assertEqual(self.who(lg), "b")
        # The idle connection to a closed; the busy one still serves its request.
        self.assertEqual(result, {})
        release.set()
        t.join(10)
        status, headers, _, _ = result["r"]
        self.assertEqual(status, 200)
        self.assertEqual(dict((k.lower(), v) for k, v in headers)["x-upstream"], "a")
        # After it, a's connections are closed (the pool drained), none reused.
        wait_until(lambda: len(a.closed_conns) >= a.accepted, 5,
                   what="a's connections closed after the drain")
        self.assertEqual({self.who(lg) for _ in range(3)}, {"b"})

    def test_dns_failure_keeps_the_last_answer(self):
        self.dns.set({NAME: ["127.0.0.2"]})
        self.dns.wait_answer(NAME, ["127.0.0.2"])
        lg = self.start_legate(http_bootstrap([dns_cluster(
            "dns", self.up_port, self.dns.port, dns_lookup_family="V4_ONLY",
            dns_failure_refresh_rate={"base_interval": "0.05s", "max_interval": "0.2s"})]))
        self.assertEqual(self.who(lg), "a")
        self.dns.stop()  # queries now time out or are refused
        lg.wait_for_stat("cluster.dns.update_failure", lambda v: v >= 1, timeout=30)
        self.assertEqual({self.who(lg) for _ in range(3)}, {"a"})
        self.assertEqual(lg.stat("cluster.dns.membership_total"), 1)

    def test_logical_dns_uses_the_first_answer_for_new_connections(self):
        self.dns.set({NAME: ["127.0.0.2"]})
        self.dns.wait_answer(NAME, ["127.0.0.2"])
        lg = self.start_legate(http_bootstrap([dns_cluster(
            "logical", self.up_port, self.dns.port, type_="LOGICAL_DNS",
            dns_lookup_family="V4_ONLY")]))
        self.assertEqual({self.who(lg) for _ in range(3)}, {"a"})
        self.assertEqual(lg.stat("cluster.logical.membership_total"), 1)
        self.switch(lg, ["127.0.0.4"], stat_cluster="logical")
        self.assertEqual({self.who(lg) for _ in range(3)}, {"c"})
        self.assertEqual(lg.stat("cluster.logical.membership_total"), 1)

    def test_under_load_kill_restart_and_dns_change_without_client_failures(self):
        # Three upstreams behind one name; continuous load with retries on connect
        # failures and resets to other hosts. One upstream dies and comes back, then
        # the name moves to two new addresses: the clients never see a failure, and
        # traffic follows each change.
        port = self.up_port
        for ip, n in (("127.0.0.5", "d"), ("127.0.0.6", "e")):
            self.ups[ip] = self.server(HttpUpstream, name=n, host=ip, port=port)
        first = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
        self.dns.set({NAME: first})
        self.dns.wait_answer(NAME, first)
        retry = {"retry_on": "connect-failure,reset", "num_retries": 3,
                 "retry_host_predicate": [{
                     "name": "envoy.retry_host_predicates.previous_hosts",
                     "typed_config": {"@type": "type.googleapis.com/envoy.extensions.retry.host."
                                               "previous_hosts.v3.PreviousHostsPredicate"}}],
                 "host_selection_retry_max_attempts": 5}
        rc = route_config([virtual_host("v", ["*"], [route({"prefix": "/"}, cluster="dns",
                                                           route_extra={"retry_policy": retry})])])
        lg = self.start_legate(http_bootstrap(
            [dns_cluster("dns", port, self.dns.port, dns_lookup_family="V4_ONLY")], route_cfg=rc))
        lport = lg.port("http")
        results = []  # (status or error, x-upstream)
        stop = threading.Event()

        def load():
            import http.client
            conn = http.client.HTTPConnection("127.0.0.1", lport, timeout=10)
            i = 0
            while not stop.is_set() and i < 20000:
                try:
                    conn.request("GET", "/load%d" % i)
                    resp = conn.getresponse()
                    resp.read()
                    results.append((resp.status, resp.getheader("x-upstream")))
                except (OSError, http.client.HTTPException) as e:
                    results.append((repr(e), None))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", lport, timeout=10)
                i += 1
            conn.close()

        def upstreams_after(mark, count, what):
            wait_until(lambda: len(results) >= mark + count, 30, what=what)
            return {u for _, u in results[mark:mark + count]}

        workers = [self.thread(load) for _ in range(3)]
        try:
            self.assertEqual(upstreams_after(0, 150, "150 requests"), {"a", "b", "c"})
            # b dies: in-flight requests reset, new connections refused; retries cover it.
            self.ups["127.0.0.3"].close()
            killed = len(results)
            wait_until(lambda: len(results) >= killed + 300, 30, what="300 requests after the kill")
            tail = len(results) - 100
            self.assertEqual(upstreams_after(tail, 100, "100 more"), {"a", "c"})
            # b restarts on its address: it is back in rotation.
            self.ups["127.0.0.3"] = self.server(HttpUpstream, name="b", host="127.0.0.3", port=port)
            wait_until(lambda: any(u == "b" for _, u in results[-50:]), 30,
                       what="the restarted upstream serving again")
            # The name moves to d and e: traffic follows.
            self.switch(lg, ["127.0.0.5", "127.0.0.6"])
            moved = len(results)
            self.assertEqual(upstreams_after(moved + 20, 200, "200 requests after the move"),
                             {"d", "e"})
            # And back to the first three.
            self.switch(lg, first)
            back = len(results)
            self.assertEqual(upstreams_after(back + 20, 200, "200 requests after moving back"),
                             {"a", "b", "c"})
        finally:
            stop.set()
            for w in workers:
                w.get(30)
        failures = [r for r in results if r[0] != 200]
        self.assertEqual(failures, [])
        self.assertGreaterEqual(lg.stat("cluster.dns.upstream_rq_retry"), 1)
        self.assertEqual(lg.stat("http.ingress.downstream_rq_5xx"), 0)

    def test_unknown_resolver_and_bad_settings_are_refused_by_path(self):
        from harness import run_legate
        import json
        cfg = http_bootstrap([dns_cluster("dns", self.up_port, self.dns.port, type_="LOGICAL_DNS")])
        lbe = cfg["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"]
        lbe.append(dict(lbe[0]))
        path = os.path.join(self.tmpdir(), "bad.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        code, _, err = run_legate(["--mode", "validate", "-c", path])
        self.assertEqual(code, 1)
        self.assertIn("static_resources.clusters[0].load_assignment", err)
        self.assertIn("exactly one lb_endpoint", err)

        cfg = http_bootstrap([dns_cluster("dns", self.up_port, self.dns.port)])
        cfg["static_resources"]["clusters"][0]["typed_dns_resolver_config"]["typed_config"][
            "use_resolvers_as_fallback"] = True
        with open(path, "w") as f:
            json.dump(cfg, f)
        code, _, err = run_legate(["--mode", "validate", "-c", path])
        self.assertEqual(code, 1)
        self.assertIn("typed_dns_resolver_config.typed_config.use_resolvers_as_fallback", err)


if __name__ == "__main__":
    unittest.main()
