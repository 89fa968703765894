package sip

import (
	"bytes"
	"embed"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"text/template"
)

//go:embed scenarios/*.xml
var scenarioFS embed.FS

// Scenario files written into the work directory.
const (
	pbxScenario     = "pbx.xml"
	carrierScenario = "carrier.xml"
)

// writeScenarios renders the SIPp scenarios for the lab's relay addresses
// into dir.
func writeScenarios(dir string, relayCustomer, relayCarrier netip.Addr) error {
	data := map[string]string{
		"RelayCustomer":   relayCustomer.String(),
		"RelayCustomerRE": regexp.QuoteMeta(relayCustomer.String()),
		"RelayCarrier":    relayCarrier.String(),
		"RelayCarrierRE":  regexp.QuoteMeta(relayCarrier.String()),
	}
	for _, name := range []string{pbxScenario, carrierScenario} {
		src, err := scenarioFS.ReadFile("scenarios/" + name)
		if err != nil {
			return fmt.Errorf("sip: %w", err)
		}
		t, err := template.New(name).Parse(string(src))
		if err != nil {
			return fmt.Errorf("sip: scenario %s: %w", name, err)
		}
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return fmt.Errorf("sip: scenario %s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("sip: %w", err)
		}
	}
	return nil
}
