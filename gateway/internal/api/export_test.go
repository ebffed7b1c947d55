package api

// LoadSpecFrom loads a spec other than the embedded one, so tests can
// prove that the gateway follows the loaded document.
var LoadSpecFrom = loadSpec
