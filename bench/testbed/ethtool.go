package testbed

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Legacy single-feature ethtool ioctls (linux/ethtool.h). The kernel still
// maps them onto netdev features, and they spare us ethtool(8), which is not
// installed everywhere, and the string-set dance of ETHTOOL_SFEATURES.
const (
	ethtoolGTXCSUM = 0x16
	ethtoolSTXCSUM = 0x17
	ethtoolGGRO    = 0x2b
	ethtoolSGRO    = 0x2c
)

type ethtoolValue struct {
	cmd  uint32
	data uint32
}

// ifreqData is struct ifreq with the ifr_data member of the union.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

// setFeature sets a feature of the end with one of the ethtoolS* commands.
func (e *End) setFeature(cmd uint32, on bool) error {
	v := ethtoolValue{cmd: cmd}
	if on {
		v.data = 1
	}
	return e.ethtool(&v)
}

// Feature reads a feature with one of the ethtoolG* commands.
func (e *End) feature(cmd uint32) (bool, error) {
	v := ethtoolValue{cmd: cmd}
	err := e.ethtool(&v)
	return v.data != 0, err
}

// GRO reports whether generic receive offload is on.
func (e *End) GRO() (bool, error) { return e.feature(ethtoolGGRO) }

// TxChecksum reports whether TX checksum offload is on.
func (e *End) TxChecksum() (bool, error) { return e.feature(ethtoolGTXCSUM) }

func (e *End) ethtool(v *ethtoolValue) error {
	return e.NS.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("testbed: ethtool socket: %w", err)
		}
		defer unix.Close(fd)
		var ifr ifreqData
		copy(ifr.name[:], e.Name)
		ifr.data = unsafe.Pointer(v)
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
		runtime.KeepAlive(v)
		if errno != 0 {
			return fmt.Errorf("testbed: %s: ethtool cmd %#x: %w", e, v.cmd, errno)
		}
		return nil
	})
}
