# shellcheck shell=bash
# check_docker_context: proves the container image's build context compiles, without Docker.
#
# Assembles exactly what .dockerignore admits (it must be `*` followed by `!path` lines: anything
# else is refused rather than guessed at) in target/docker-context/tree, and runs
# `cargo check --locked` there with its own target directory, kept between runs so the check is
# incremental. A manifest naming a file the context leaves out (a [[bench]], a build script)
# fails here, as it would fail `docker build`.

check_docker_context() {
  local root tree admitted=() line
  root=$(pwd)
  tree=$root/target/docker-context/tree
  local seen_star=0
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line%%#*}
    line=${line//[[:space:]]/}
    [[ -z $line ]] && continue
    if [[ $line == '*' ]]; then
      seen_star=1
    elif [[ $line == '!'* && $seen_star == 1 ]]; then
      admitted+=("${line#!}")
    else
      echo "scripts/test: .dockerignore line '$line': only '*' then '!path' lines are understood" >&2
      return 1
    fi
  done < .dockerignore
  if [[ $seen_star == 0 || ${#admitted[@]} == 0 ]]; then
    echo "scripts/test: .dockerignore must start with '*' and admit paths with '!path'" >&2
    return 1
  fi
  rm -rf "$tree"
  mkdir -p "$tree"
  local path
  for path in "${admitted[@]}"; do
    path=${path#/}
    if [[ -e $path ]]; then
      mkdir -p "$tree/$(dirname "$path")"
      # -p keeps modification times, so cargo's fingerprints see unchanged files as unchanged.
      cp -Rp "$path" "$tree/$path"
    fi
  done
  log "checking the image's build context (${admitted[*]}) with cargo check --locked"
  (cd "$tree" && CARGO_TARGET_DIR=$root/target/docker-context/target cargo check --locked --quiet)
}
