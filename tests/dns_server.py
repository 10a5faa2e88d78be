"""A stub DNS server on 127.0.0.1 (UDP), answering from a dict of records.

Runs in a thread so both async tests and synchronous CLI tests can use it. A name with
no record of any type answers NXDOMAIN; a name with records of other types answers an
empty NOERROR (NODATA); names in ``servfail`` answer SERVFAIL; names in ``silent`` are
never answered (the resolver times out).

    server = DnsServer().start()
    server.add("example.com", "MX", "10 mx1.example.com.")
    server.add("mx1.example.com", "A", "127.0.0.2")
    settings.dns_resolvers = [server.address]
"""

import socket
import threading
from collections import defaultdict

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


def _key(name: str) -> str:
    return dns.name.from_text(name).to_text().lower()


class DnsServer:
    def __init__(self) -> None:
        self.records: dict[str, dict[str, list[str]]] = defaultdict(dict)
        self.servfail: set[str] = set()
        self.silent: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="stub-dns", daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def add(self, name: str, rdtype: str, *values: str) -> "DnsServer":
        with self._lock:
            self.records[_key(name)].setdefault(rdtype.upper(), []).extend(values)
        return self

    def remove(self, name: str, rdtype: str | None = None) -> None:
        with self._lock:
            if rdtype is None:
                self.records.pop(_key(name), None)
            else:
                self.records[_key(name)].pop(rdtype.upper(), None)

    def fail(self, name: str) -> None:
        self.servfail.add(_key(name))

    def ignore(self, name: str) -> None:
        self.silent.add(_key(name))

    def start(self) -> "DnsServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self._sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                query = dns.message.from_wire(wire)
            except Exception:  # noqa: BLE001 - a stub ignores garbage
                continue
            answer = self._answer(query)
            if answer is not None:
                self._sock.sendto(answer.to_wire(), peer)

    def _answer(self, query: dns.message.Message) -> dns.message.Message | None:
        question = query.question[0]
        name = question.name.to_text().lower()
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries.append((name, rdtype))
            if name in self.silent:
                return None
            response = dns.message.make_response(query)
            response.flags |= dns.flags.AA
            if name in self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
                return response
            if name not in self.records or not self.records[name]:
                response.set_rcode(dns.rcode.NXDOMAIN)
                return response
            values = self.records[name].get(rdtype, [])
            if values:
                response.answer.append(
                    dns.rrset.from_text_list(question.name, 60, dns.rdataclass.IN, rdtype, values)
                )
            return response
