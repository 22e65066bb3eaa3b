"""Models: the AstroMAE-class photo-z network and its checkpoints.

Submodules are imported on demand (``from astrokit.models.astromae import AstroMAE``); this
package module stays free of eager imports so that importing one model never pulls another.
"""
