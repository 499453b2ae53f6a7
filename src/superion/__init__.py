"""superion: M3GNet molecular dynamics of superionic conductors, from crystal structure to Arrhenius plot."""

__version__ = "0.1.0"
