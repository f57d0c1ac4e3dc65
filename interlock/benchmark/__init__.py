"""`interlock bench`: a reproducible benchmark of real service processes on its own sandbox."""
