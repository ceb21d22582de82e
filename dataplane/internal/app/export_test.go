package app

// ReadPeerCount exposes readPeerCount to the tests.
var ReadPeerCount = readPeerCount
