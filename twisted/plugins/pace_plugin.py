# The `twistd pace` plugin: everything lives in pace.tap.
from twisted.application.service import ServiceMaker

pace = ServiceMaker(
    "Pace", "pace.tap", "Process Resque jobs from Redis in a Twisted reactor", "pace"
)
