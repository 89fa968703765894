package relay

import (
	"os"
	"testing"

	"github.com/xtrunk/xtrunk/bench/testbed/labtest"
)

// TestMain removes the xtrunk binaries labtest.BuildXtrunk built.
func TestMain(m *testing.M) { os.Exit(labtest.Main(m)) }
