package sipmsg

import "errors"

// ErrTooManyHops is returned when Max-Forwards is below MinMaxForwards.
var ErrTooManyHops = errors.New("sipmsg: Max-Forwards below 20")
