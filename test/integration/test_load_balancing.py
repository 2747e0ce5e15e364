"""Consistent hashing through the real proxy: a route hash_policy (header, generated
cookie) with RING_HASH and MAGLEV clusters keeps a client on one upstream."""

import unittest

from harness import (HttpUpstream, LegateTestCase, http_bootstrap, http_get, route,
                     route_config, static_cluster, virtual_host)


class ConsistentHashTest(LegateTestCase):
    def start(self, policy, hash_policy):
        self.ups = [self.server(HttpUpstream, name="u%d" % i) for i in range(3)]
        cluster = static_cluster("ch", [u.port for u in self.ups], lb_policy=policy)
        rc = route_config([virtual_host("v", ["*"], [route({"prefix": "/"}, cluster="ch",
                                                           route_extra={"hash_policy": hash_policy})])])
        return self.start_legate(http_bootstrap([cluster], route_cfg=rc))

    def get(self, lg, headers=None):
        status, hdrs, _, _ = http_get(lg.port("http"), "/", headers=headers)
        self.assertEqual(status, 200)
        h = {}
        for k, v in hdrs:
            h.setdefault(k.lower(), v)
        return h

    def check_header_affinity(self, policy):
        lg = self.start(policy, [{"header": {"header_name": "x-user"}}])
        seen = {}
        for user in ("user-%d" % i for i in range(30)):
            picks = {self.get(lg, {"x-user": user})["x-upstream"] for _ in range(3)}
            self.assertEqual(len(picks), 1, "%s went to %s" % (user, picks))
            seen[user] = picks.pop()
        # Thirty users spread over the three upstreams.
        self.assertEqual(set(seen.values()), {"u0", "u1", "u2"})

    def test_ring_hash_header_affinity(self):
        self.check_header_affinity("RING_HASH")

    def test_maglev_header_affinity(self):
        self.check_header_affinity("MAGLEV")

    def test_generated_cookie_keeps_the_client_on_its_upstream(self):
        lg = self.start("RING_HASH", [{"cookie": {"name": "sticky", "ttl": "60s", "path": "/"}}])
        first = self.get(lg)
        cookie = first.get("set-cookie", "")
        self.assertTrue(cookie.startswith('sticky="'), cookie)
        self.assertIn("Max-Age=60", cookie)
        self.assertIn("HttpOnly", cookie)
        value = cookie.split(";", 1)[0]
        for _ in range(5):
            again = self.get(lg, {"cookie": value})
            self.assertEqual(again["x-upstream"], first["x-upstream"])
            self.assertNotIn("set-cookie", again)  # the client has one now


if __name__ == "__main__":
    unittest.main()
