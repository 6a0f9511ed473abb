#!/usr/bin/python3
"""TCP connects, all at once, each bounded: prints "ADDRESS:PORT open|closed|filtered" per target.

open: the handshake completed; closed: refused (a reset: the firewall let the SYN through and
nothing listens); filtered: no answer within the timeout, or the local firewall refused to send.
Usage: connect-probe.py [--source ADDRESS] [--timeout SECONDS] ADDRESS:PORT...
Run it inside a lab namespace (ip netns exec): the connections start there.
"""
import argparse
import errno
import socket
from concurrent.futures import ThreadPoolExecutor


def probe(target: str, source: str | None, timeout: float) -> str:
    address, port = target.rsplit(":", 1)
    try:
        with socket.create_connection(
            (address, int(port)), timeout=timeout, source_address=(source, 0) if source else None
        ):
            return "open"
    except ConnectionRefusedError:
        return "closed"
    except OSError as err:
        # EPERM: dropped by this namespace's own output chain; timeouts and unreachables: dropped on the way.
        if isinstance(err, (TimeoutError, socket.timeout)) or err.errno in (
            errno.EPERM,
            errno.EHOSTUNREACH,
            errno.ENETUNREACH,
            errno.ETIMEDOUT,
        ):
            return "filtered"
        raise


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source")
    parser.add_argument("--timeout", type=float, default=1.5)
    parser.add_argument("targets", nargs="+")
    args = parser.parse_args()
    with ThreadPoolExecutor(max_workers=min(64, len(args.targets))) as pool:
        states = pool.map(lambda t: probe(t, args.source, args.timeout), args.targets)
        for target, state in zip(args.targets, states):
            print(f"{target} {state}")


if __name__ == "__main__":
    main()
