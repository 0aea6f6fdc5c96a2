"""Text-to-3D guidances (`sds`, `vsd`, `uniinstruct`): thin adapters from renders to the shared `ui3d.distill`
losses. Each is built as `find(name)(cfg, teacher)` with the teacher from `ui3d.teachers.loader.load_teacher`."""
