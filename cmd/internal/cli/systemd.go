package cli

import (
	"errors"
	"fmt"
	"net"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
)

// SocketActivated is the address spelling of a listener handed over by
// systemd socket activation, as buildkitd and dockerd spell it.
const SocketActivated = "fd://"

// ActivatedListener returns the one listening socket systemd passed
// (LISTEN_FDS/LISTEN_PID), for an address of SocketActivated.
func ActivatedListener() (net.Listener, error) {
	ls, err := activation.Listeners()
	if err != nil {
		return nil, fmt.Errorf("socket activation: %w", err)
	}
	var out []net.Listener
	for _, l := range ls {
		if l != nil {
			out = append(out, l)
		}
	}
	switch len(out) {
	case 0:
		return nil, errors.New("socket activation: fd:// but systemd passed no listening socket (LISTEN_FDS)")
	case 1:
		return out[0], nil
	}
	for _, l := range out[1:] {
		l.Close()
	}
	return nil, fmt.Errorf("socket activation: %d sockets passed, want one", len(out))
}

// NotifyReady tells systemd (Type=notify) that the service is ready, so
// units ordered After= it (docker.service Before= ordering) start only
// then. Without NOTIFY_SOCKET it does nothing.
func NotifyReady() error {
	_, err := daemon.SdNotify(false, daemon.SdNotifyReady)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// NotifyStopping tells systemd the service is stopping.
func NotifyStopping() {
	_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
}
