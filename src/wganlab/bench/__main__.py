"""``python -m wganlab.bench``: one isolated bench case (the child process of :mod:`wganlab.bench.harness`)."""

from wganlab.bench.harness import child

child()
