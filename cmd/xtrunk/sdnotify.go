package main

import (
	"net"
	"os"
	"strings"

	"github.com/rs/zerolog"
)

// sdNotify sends state ("READY=1", "STOPPING=1") to systemd over
// $NOTIFY_SOCKET, so units can be Type=notify: systemd then starts what
// depends on a process only once it really serves. Without the variable
// (not under systemd) it does nothing. The protocol is one datagram on a
// unix socket; an abstract socket is written with a leading '@'.
func sdNotify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:]
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}

// ready logs that the process is up and tells systemd.
func ready(log zerolog.Logger) {
	if err := sdNotify("READY=1"); err != nil {
		log.Warn().Err(err).Msg("sd_notify READY=1")
	}
}

// stopping tells systemd the process is shutting down (a drain can take
// a while; systemd should not think it hung).
func stopping(log zerolog.Logger) {
	if err := sdNotify("STOPPING=1"); err != nil {
		log.Debug().Err(err).Msg("sd_notify STOPPING=1")
	}
}
