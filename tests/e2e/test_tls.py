"""TLS on the client port and the HTTP port, with a certificate the test makes (trustme's throwaway CA)."""

from __future__ import annotations

import socket
import ssl
import urllib.request

import pytest
import trustme
from chatwire import WireClient, WsClient
from test_cluster_flow import unique

from chatcluster.proto import chat_pb2 as pb

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def tls_cluster(cluster_factory, ca, tmp_path):
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    return cluster_factory("--tls-cert", str(cert_file), "--tls-key", str(key_file))


def client_context(ca) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


class TlsWireClient(WireClient):
    def __init__(self, host: str, port: int, context: ssl.SSLContext) -> None:
        super().__init__(host, port)
        self.sock = context.wrap_socket(self.sock, server_hostname=host)


def test_tcp_over_tls_and_wss_chat_in_one_room(tls_cluster, ca):
    context = client_context(ca)
    tcp = TlsWireClient(tls_cluster.host, tls_cluster.port, context)
    wss = WsClient(tls_cluster.host, tls_cluster.http_port, ssl=context)
    assert tcp.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert tcp.login(unique("tls-tcp")).success and wss.login(unique("tls-ws")).success
    tcp.send(pb.C_CREATE_ROOM_REQ(name="secret"))
    room = tcp.expect(pb.S_CREATE_ROOM_RES).room.room_id
    wss.send(pb.C_JOIN_ROOM_REQ(room_id=room))
    assert wss.expect(pb.S_JOIN_ROOM_RES).success
    tcp.expect(pb.S_JOIN_ROOM_NTF)
    tcp.chat("over tls")
    wss.chat("over wss")
    for c in (tcp, wss):
        got = [c.expect(pb.S_ROOM_CHAT_NTF) for _ in range(2)]
        assert [(m.seq, m.text) for m in got] == [(1, "over tls"), (2, "over wss")]
    with urllib.request.urlopen(f"https://{tls_cluster.host}:{tls_cluster.http_port}/", context=context) as page:
        assert page.status == 200
    assert tls_cluster.gateway_status()["tls"] is True


def test_plain_tcp_to_a_tls_port_gets_nothing_and_harms_nobody(tls_cluster, ca):
    tcp = TlsWireClient(tls_cluster.host, tls_cluster.port, client_context(ca))
    assert tcp.login(unique("tls-ok")).success
    plain = socket.create_connection((tls_cluster.host, tls_cluster.port), timeout=5)
    plain.sendall(b"\x10\x00\x01\x00" + b"\x00" * 12)  # a frame where a TLS ClientHello should be
    assert plain.recv(4096)[:1] in (b"", b"\x15")  # closed, or a TLS alert record
    untrusted = ssl.create_default_context()  # does not know the test CA
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusted.wrap_socket(socket.create_connection((tls_cluster.host, tls_cluster.port)),
                              server_hostname=tls_cluster.host)
    tcp.send(pb.C_PING(client_time_us=3))
    assert tcp.expect(pb.S_PONG).client_time_us == 3
