"""One module per benchmark scenario; each records figures on a Recorder as it measures."""
