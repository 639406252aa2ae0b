"""Built-in policies: routers, schedulers, KV managers, hand-offs, speculators and controllers, one file each.

Nothing to import here: ``sim.registry.load_builtins()`` imports every module under this
package (new subpackages included), and each module registers its classes by name.
"""
