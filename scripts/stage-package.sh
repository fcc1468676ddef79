# Sourced by make demo and the system tests: lay out a package folder the way the guest
# agent does before it runs a command, without the agent.
#   stage_package BUILD_PKG DEST LOG_DIR
# copies the built package tree to DEST, creates DEST/config and DEST/status, and writes
# DEST/HandlerEnvironment.json naming LOG_DIR (created) as the log folder.
stage_package() {
  mkdir -p "$(dirname "$2")" "$3"
  cp -r "$1" "$2"
  mkdir -p "$2/config" "$2/status"
  cat >"$2/HandlerEnvironment.json" <<END
[{"version": 1.0, "handlerEnvironment": {"logFolder": "$3", "configFolder": "$2/config",
 "statusFolder": "$2/status", "heartbeatFile": "$2/heartbeat.log"}}]
END
}
