# shellcheck shell=bash
# Sourced by scripts/demo and scripts/redis-suite.
#
#   make_certs DIR   writes a throwaway CA (DIR/ca.pem, DIR/ca.key) and a server certificate
#                    for localhost / 127.0.0.1 / ::1 signed by it (DIR/server.pem, DIR/server.key),
#                    unless DIR/server.pem already exists. Needs openssl.
#   random_secret    prints 32 random hex characters

make_certs() {
  local dir=$1
  [ -s "$dir/server.pem" ] && [ -s "$dir/ca.pem" ] && return 0
  mkdir -p "$dir"
  (
    umask 077
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 30 \
      -subj '/CN=redauth throwaway CA' \
      -addext 'basicConstraints=critical,CA:TRUE' \
      -addext 'keyUsage=critical,keyCertSign,cRLSign' \
      -keyout "$dir/ca.key" -out "$dir/ca.pem" 2>/dev/null
    openssl req -new -nodes -newkey rsa:2048 -sha256 -subj '/CN=localhost' \
      -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
    printf '%s\n' \
      'basicConstraints=critical,CA:FALSE' \
      'keyUsage=critical,digitalSignature,keyEncipherment' \
      'extendedKeyUsage=serverAuth,clientAuth' \
      'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1' >"$dir/server.ext"
    openssl x509 -req -sha256 -days 30 -in "$dir/server.csr" \
      -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
      -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
    rm -f "$dir/server.csr" "$dir/server.ext" "$dir/ca.srl"
  )
  # redis-server must be able to read its key; the CA key stays private.
  chmod 644 "$dir/ca.pem" "$dir/server.pem"
}

random_secret() {
  openssl rand -hex 16
}
