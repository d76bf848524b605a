#!/usr/bin/env python3
"""A TCP proxy that tests switch between "up" and "down" to kill a server.

    fault_proxy.py --port P --target HOST:PORT --control FILE

Forwards every connection on 127.0.0.1:P to the target. The first word of
FILE (re-read every 50 ms) is the mode: "up" forwards; "down" resets every
open connection and every new one (the server looks dead). Prints "ready"
once listening. Stdlib only; stopped by SIGTERM.
"""
import argparse
import os
import signal
import socket
import struct
import sys
import threading
import time

conns = set()
lock = threading.Lock()
mode = "up"


def reset(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def handle(client, target):
    if mode != "up":
        reset(client)
        return
    try:
        upstream = socket.create_connection(target)
    except OSError:
        reset(client)
        return
    with lock:
        conns.add(client)
        conns.add(upstream)
    t = threading.Thread(target=pump, args=(upstream, client), daemon=True)
    t.start()
    pump(client, upstream)
    t.join()
    with lock:
        conns.discard(client)
        conns.discard(upstream)
    client.close()
    upstream.close()


def watch(control):
    global mode
    while True:
        try:
            with open(control) as f:
                m = (f.read().split() or ["up"])[0]
        except OSError:
            m = "up"
        if m != mode:
            mode = m
            if mode != "up":
                with lock:
                    for s in list(conns):
                        reset(s)
                    conns.clear()
        time.sleep(0.05)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--control", required=True)
    a = ap.parse_args()
    host, port = a.target.rsplit(":", 1)
    target = (host, int(port))
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.port))
    srv.listen(128)
    threading.Thread(target=watch, args=(a.control,), daemon=True).start()
    print("ready", flush=True)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c, target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
