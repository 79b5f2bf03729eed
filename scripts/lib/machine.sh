# Sourced by the benchmark scripts: the machine facts every results directory records, and the
# warning when the machine is busy as a run starts.

# Prints the common lines of machine.txt (date, cores, CPU, memory, load, kernel, OS, rustc).
machine_facts() {
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  [ -n "${1:-}" ] && echo "command: $1"
  echo "nproc: $(nproc)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  # Other work on the machine moves every figure (wrk on identical binaries was seen to swing
  # 3x while other benchmarks ran): the load average at the start is part of the record.
  echo "loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "kernel: $(uname -sr)"
  echo "os: $(. /etc/os-release; echo "$PRETTY_NAME")"
  echo "rustc: $(rustc --version)"
}

# Warns on stderr when the 1-minute load average is 1 or more.
warn_if_loaded() {
  if awk '{exit !($1 >= 1.0)}' /proc/loadavg; then
    echo "warning: load average $(cut -d' ' -f1 /proc/loadavg) at start: other work will move these figures" >&2
  fi
}
