#!/usr/bin/python3
"""The lab's Debian archives: a directory of files over HTTPS on 443 (what the nodes' APT sources
use) and over plain HTTP on 80 (which Debian's hosts answer too): the nodes' firewalls, not a missing
listener, keep them off port 80, and the lab's egress matrix sees the difference.

Usage: archive.py DIRECTORY ADDRESS CERT KEY   (run inside the lab's internet namespace)
"""
import functools
import http.server
import ssl
import sys
import threading


class Files(http.server.SimpleHTTPRequestHandler):
    # Keep-alive, every answer with its length: apt reads an answer to its end, not to the
    # connection's close (an HTTP/1.0 close without TLS's close_notify is an error to OpenSSL 3).
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    def shutdown_request(self, request):
        # A clean TLS close (close_notify) before the TCP one.
        if isinstance(request, ssl.SSLSocket):
            try:
                request.unwrap()
            except (OSError, ValueError):
                pass
        super().shutdown_request(request)


def main():
    directory, address, cert, key = sys.argv[1:5]
    handler = functools.partial(Files, directory=directory)
    plain = Server((address, 80), handler)
    secure = Server((address, 443), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    print("archive: ready", flush=True)
    secure.serve_forever()


if __name__ == "__main__":
    main()
