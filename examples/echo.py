"""
The smallest handler: log the job and return. Plain values complete the job
at once; nothing to wait for.

    twistd -n pace --queue echo --handler examples.echo.handle
"""

from twisted.logger import Logger

log = Logger()


def handle(job: dict) -> None:
    log.info("echo: {job_class} {args!r}", job_class=job["class"], args=job["args"])
