"""``python -m defcon_exp.train``: the ``defcon-train`` command as a module, so that
``torchrun --nproc_per_node=N -m defcon_exp.train ...`` works (torchrun's ``-m``)."""

from defcon_exp.cli.train import main

if __name__ == "__main__":
    main()
