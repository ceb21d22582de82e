package app

// ReadPeerCount exposes readPeerCount to the tests.
var ReadPeerCount = readPeerCount

// InFlight is the number of requests the HTTP API is serving.
func (a *App) InFlight() int64 { return a.api.InFlight() }
