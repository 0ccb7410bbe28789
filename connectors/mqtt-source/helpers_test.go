package mqttsource

import (
	"encoding/json"
	"syscall"
)

func jsonNum(s string) json.Number { return json.Number(s) }

func errConnRefused() error { return syscall.ECONNREFUSED }
