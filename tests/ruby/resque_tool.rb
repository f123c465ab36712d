# What Ruby Resque 2.x itself does, for tests/test_resque_interop.py: run
# with `ruby -I$PACE_RESQUE_SRC/lib tests/ruby/resque_tool.rb COMMAND ARGS`,
# $REDIS_URL set. Prints one JSON document.
require "json"
require "resque"

Resque.redis = ENV.fetch("REDIS_URL")

def failed
  n = Resque::Failure.count
  # Resque's list_range returns the item itself when asked for one.
  n == 1 ? [Resque::Failure.all(0, 1)] : Array(Resque::Failure.all(0, n))
end

out =
  case ARGV[0]
  when "start-worker"
    # A Ruby worker starting on this host (worker.rb#startup prunes), that
    # processes what is queued and leaves: work(0).
    Resque.redis.del("pruning_dead_workers_in_progress")
    ENV["FORK_PER_JOB"] = "false"
    Resque.prune_interval = Integer(ENV["PRUNE_INTERVAL"]) if ENV["PRUNE_INTERVAL"]
    worker = Resque::Worker.new(*ARGV[1].split(","))
    worker.work(0)
    { "failed" => Array(failed) }
  when "prune"
    # Only the prune, as a Ruby worker on queues ARGV[1] runs it.
    Resque.redis.del("pruning_dead_workers_in_progress")
    Resque.prune_interval = Integer(ENV["PRUNE_INTERVAL"]) if ENV["PRUNE_INTERVAL"]
    Resque::Worker.new(*ARGV[1].split(",")).prune_dead_workers
    { "failed" => Array(failed) }
  when "workers"
    {
      "workers" => Resque::Worker.all.map { |w| { "id" => w.to_s, "pid" => w.pid, "queues" => w.queues } },
      "working" => Resque::Worker.working.map { |w| { "id" => w.to_s, "job" => w.job } },
      "known_pids" => Resque::Worker.new("x").worker_pids,
    }
  when "keys"
    Resque.keys.sort.map { |k| [k, Resque.redis.type(k), Resque.redis.type(k) == "list" ? Resque.redis.llen(k) : nil] }
  when "requeue-each"
    results = []
    Resque::Failure.count.times do |i|
      begin
        Resque::Failure.requeue(i)
        results << "ok"
      rescue Exception => e
        results << "#{e.class}: #{e.message}"
      end
    end
    { "results" => results }
  when "requeue-all"
    begin
      Resque::Failure.requeue_all
      { "ok" => true }
    rescue Exception => e
      { "ok" => false, "error" => "#{e.class}: #{e.message}" }
    end
  when "enqueue-to"
    Resque.enqueue_to(ARGV[1], ARGV[2], *JSON.parse(ARGV[3]))
    { "ok" => true }
  when "web"
    # A page of resque-web (Resque::Server), rendered in process.
    require "resque/server"
    require "rack/mock"
    response = Rack::MockRequest.new(Resque::Server).get(ARGV[1])
    { "status" => response.status, "body" => response.body }
  when "heartbeat-age"
    now = Resque.data_store.server_time
    Resque::Worker.all_heartbeats.transform_values { |t| (now - Time.parse(t)).to_i }
  else
    abort "unknown command #{ARGV[0]}"
  end
puts JSON.generate(out)
