# resque-scheduler itself, against the test's Redis (tests/test_schedule.py):
# finds and removes a job Pace scheduled, schedules its own, and moves a due
# one as its scheduler process would. Prints what it saw as JSON.
require "json"
$LOAD_PATH.unshift(File.join(ENV.fetch("PACE_RESQUE_SRC"), "lib"))
$LOAD_PATH.unshift(File.join(ENV.fetch("PACE_RESQUE_SCHEDULER_SRC"), "lib"))
begin
  require "rufus/scheduler"
rescue LoadError
  # Only recurring schedules use rufus-scheduler; delayed jobs never do.
  module Rufus; class Scheduler; end; end
  $LOADED_FEATURES << "rufus/scheduler.rb"
end
$stderr = File.open(File::NULL, "w") unless ENV["PACE_DEBUG"] # redis-rb deprecation warnings
require "resque"
require "resque-scheduler"
Resque::Scheduler.quiet = true
Resque.redis = "redis://127.0.0.1:#{ARGV[0]}/0"
t = Integer(ARGV[1])
class PaceJob; @queue = :q; end
class RubyJob; @queue = :q; end
out = {}
out["scheduled_at"] = Resque.scheduled_at(PaceJob, 2, "/é")
out["delayed"] = Resque.delayed?(PaceJob, 2, "/é")
out["count"] = Resque.count_all_scheduled_jobs
out["removed"] = Resque.remove_delayed(PaceJob, 2, "/é")
Resque.enqueue_at(Time.at(t + 100), RubyJob, 1, "a/é", {"k" => [1.5, nil, 1e20]})
Resque.enqueue_at_with_queue("other", Time.at(t + 100), "Named", 3)
Resque::Scheduler.handle_delayed_items(Time.at(t + 60))
out["moved_by_ruby"] = Resque.redis.lrange("queue:early", 0, -1)
out["ruby_payloads"] = [
  Resque.encode(class: "RubyJob", args: [1, "a/é", {"k" => [1.5, nil, 1e20]}]),
  Resque.encode(class: "Named", args: [3]),
]
puts JSON.generate(out)
