package render

import "errors"

// Sentinel errors of the renderer.
var (
	// ErrDashboard is a dashboard JSON the renderer cannot read.
	ErrDashboard = errors.New("render: dashboard")
	// ErrQuery is a PromQL query Prometheus did not answer with data.
	ErrQuery = errors.New("render: query")
	// ErrDraw is a failure to draw or encode the image.
	ErrDraw = errors.New("render: draw")
)
