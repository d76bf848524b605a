#!/usr/bin/python3
"""Run one OpenStack Swift server from a directory of our own.

    swiftd.py SWIFT_DIR SERVER CONF
    swiftd.py SWIFT_DIR rings ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT

SERVER is proxy-server, account-server, container-server or object-server;
CONF its paste.deploy file. Debian's server scripts read swift.conf from
/etc/swift whatever the config says; this one reads SWIFT_DIR/swift.conf
(hash path prefix and suffix, storage policies, constraints), so a test's
Swift never touches the machine's. The rings are found through swift_dir in
CONF. Logs go to stderr (the caller's log file) instead of syslog. One
process, no fork (workers = 0 in CONF): the caller stops it by PID.

"rings" writes SWIFT_DIR/{account,container,object}.ring.gz (and their
.builder files): 2^8 partitions, one replica, one device d1 on 127.0.0.1 at
the given port each, as swift-ring-builder create/add/rebalance would, in
one process.

Runs with Debian's /usr/bin/python3 (python3-swift), whatever python3 is
first on PATH.
"""

import logging
import sys


class _NoSyslog(logging.Handler):
    """Stands in for Swift's syslog handler: the console handler logs."""

    def __init__(self, *args, **kwargs):  # noqa: ARG002 - syslog's signature
        super().__init__()

    def emit(self, record):
        pass


def rings(swift_dir, ports):
    import os

    from swift.common.ring import RingBuilder

    for kind, port in zip(("account", "container", "object"), ports):
        b = RingBuilder(8, 1, 0)
        b.add_dev({"region": 1, "zone": 1, "ip": "127.0.0.1",
                   "port": int(port), "device": "d1", "weight": 100.0,
                   "meta": ""})
        b.rebalance()
        b.get_ring().save(os.path.join(swift_dir, "%s.ring.gz" % kind))
        b.save(os.path.join(swift_dir, "%s.builder" % kind))
    return 0


def main(argv):
    if len(argv) == 6 and argv[2] == "rings":
        return rings(argv[1], argv[3:6])
    if len(argv) != 4:
        sys.stderr.write(__doc__)
        return 2
    swift_dir, server, conf = argv[1:4]
    from swift.common import utils

    utils.ThreadSafeSysLogHandler = _NoSyslog
    utils.set_swift_dir(swift_dir)
    from swift.common import constraints, storage_policy

    storage_policy.reload_storage_policies()
    constraints.reload_constraints()
    from swift.common.wsgi import run_wsgi

    return run_wsgi(conf, server, verbose=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
