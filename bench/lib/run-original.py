"""
Runs one of the original Python programs the benches compare against (jupyter/tmpnb's
orchestrate.py or jupyter/tmpnb-redirector's redirector.py, from a checkout named by the bench,
never part of this repository) on today's Debian packages, unchanged:

    python3 bench/lib/run-original.py /path/to/orchestrate.py --port=... ...

They were written for tornado 4 and docker-py 1.x. Three shims make them start on tornado 6 and
docker-py 5 without touching their code:
- docker.Client is docker.APIClient since docker-py 2, whose create_container takes cpu_shares
  in the host config only;
- tornado.gen.Task (removed in tornado 6) is rebuilt from a Future for the one way tmpnb uses it,
  `yield gen.Task(loop.add_timeout, deadline)`;
- servers that listen on every interface (the redirector's public port has no address option)
  listen on loopback only, as every bench program does.
"""
import os
import runpy
import sys

import tornado.gen
import tornado.web
from tornado.concurrent import Future

try:
    import docker
except ImportError:  # the redirector does not use Docker
    docker = None

if docker is not None and not hasattr(docker, 'Client'):
    class _Client(docker.APIClient):
        # tmpnb passes cpu_shares=None to create_container; docker-py 5 has it in the host config only
        def create_container(self, *args, cpu_shares=None, host_config=None, **kwargs):
            if cpu_shares is not None:
                host_config = {**(host_config or {}), 'CpuShares': cpu_shares}
            return super().create_container(*args, host_config=host_config, **kwargs)

    docker.Client = _Client


def _task(func, *args, **kwargs):
    future = Future()
    func(*args, callback=lambda *_: future.set_result(None), **kwargs)
    return future


if not hasattr(tornado.gen, 'Task'):
    tornado.gen.Task = _task

_listen = tornado.web.Application.listen


def _listen_on_loopback(self, port, address='', **kwargs):
    return _listen(self, port, address or '127.0.0.1', **kwargs)


tornado.web.Application.listen = _listen_on_loopback

script = os.path.abspath(sys.argv[1])
sys.path.insert(0, os.path.dirname(script))
sys.argv = [script] + sys.argv[2:]
runpy.run_path(script, run_name='__main__')
