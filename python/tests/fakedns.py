"""A DNS server on 127.0.0.1 (UDP, a free port) answering from a dict, for
tests of Milter.dns without the network.  Uses dnspython to read queries
and write replies.

ZONE maps (name, type) to a list of record texts in zone-file syntax
('10 mx1.example.com.', '"v=spf1" " -all"').  A name with a CNAME gets
the CNAME in the answer, followed by the target's records when the target
is in FOLLOW (a recursive server's full answer) or alone otherwise, which
makes the client ask again.  A name that is not in ZONE at all is
NXDOMAIN; one that is there without the asked type gets an empty answer.
"""
import socket
import threading

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.rrset


class FakeDNS(object):

    def __init__(self, zone, follow=(), silent=False):
        self.zone = {(n.lower(), t): v for (n, t), v in zone.items()}
        self.follow = set(follow)
        self.silent = silent          # never answer: a dead server
        self._stop = False
        self.queries = []             # (name, type) asked, in order
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(('127.0.0.1', 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def resolver(self, lifetime=2.0):
        r = dns.resolver.Resolver(configure=False)
        r.nameservers = ['127.0.0.1']
        r.port = self.port
        r.timeout = r.lifetime = lifetime
        r.retry_servfail = False
        return r

    def close(self):
        """Stop the server thread (woken by an empty datagram) and wait
        for it, so no test leaves a thread behind."""
        self._stop = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b'', ('127.0.0.1', self.port))
        self.thread.join(5)
        self.sock.close()

    def _serve(self):
        while True:
            wire, peer = self.sock.recvfrom(4096)
            if self._stop:
                return
            q = dns.message.from_wire(wire)
            question = q.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            qtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, qtype))
            if self.silent:
                continue
            self.sock.sendto(self._answer(q, name, qtype).to_wire(), peer)

    def _add(self, resp, name, rtype):
        rrset = dns.rrset.from_text_list(name + '.', 300, 'IN', rtype,
                                         self.zone[(name, rtype)])
        resp.answer.append(rrset)

    def _answer(self, q, name, qtype):
        resp = dns.message.make_response(q)
        if not any(n == name for n, _t in self.zone):
            resp.set_rcode(dns.rcode.NXDOMAIN)
            return resp
        for _hop in range(8):
            if (name, qtype) in self.zone:
                self._add(resp, name, qtype)
                break
            if (name, 'CNAME') not in self.zone:
                break
            self._add(resp, name, 'CNAME')
            if name not in self.follow:
                break
            name = self.zone[(name, 'CNAME')][0].rstrip('.').lower()
        return resp
