"""Ray–box intersection against brute force, stratified bins, and the PyTorch occupancy grid."""

import torch

from ui3d.renderers.ray_sampling import OccupancyGrid, ray_aabb_intersect, stratified_samples


def test_ray_aabb_intersect_matches_brute_force():
    torch.manual_seed(0)
    radius = 0.7
    rays_o = torch.nn.functional.normalize(torch.randn(300, 3), dim=-1) * 1.5
    rays_d = torch.nn.functional.normalize(-rays_o + torch.randn(300, 3) * 0.6, dim=-1)
    rays_d[:5] = torch.tensor([1.0, 0.0, 0.0])  # axis-aligned: zero direction components
    t_near, t_far, hit = ray_aabb_intersect(rays_o, rays_d, radius)
    t = torch.linspace(0.0, 4.0, 8001)
    inside = ((rays_o[:, None] + t[:, None] * rays_d[:, None]).abs() <= radius).all(-1)  # [R, T]
    step = t[1] - t[0]
    assert torch.equal(hit, inside.any(-1))
    first = torch.where(inside, t, torch.inf).amin(-1)[hit]
    last = torch.where(inside, t, -torch.inf).amax(-1)[hit]
    assert (t_near[hit] - first).abs().max() <= step and (t_far[hit] - last).abs().max() <= step
    assert torch.equal(t_near[~hit], t_far[~hit])


def test_origin_inside_box_starts_at_near_plane():
    t_near, t_far, hit = ray_aabb_intersect(torch.zeros(1, 3), torch.tensor([[0.0, 0.0, 1.0]]), 0.5, 0.1)
    assert hit.item() and abs(t_near.item() - 0.1) < 1e-6 and abs(t_far.item() - 0.5) < 1e-6


def test_stratified_bins_cover_the_segment():
    t_near, t_far = torch.tensor([0.5, 1.0]), torch.tensor([1.5, 1.0])
    for randomized in (False, True):
        t_points, t_starts, t_ends = stratified_samples(t_near, t_far, 8, randomized)
        assert torch.allclose((t_ends - t_starts).sum(-1), t_far - t_near)
        assert ((t_points >= t_starts) & (t_points <= t_ends)).all()
    assert torch.allclose(stratified_samples(t_near, t_far, 2)[0][0], torch.tensor([0.75, 1.25]))


def test_occupancy_grid_marks_a_sphere():
    grid = OccupancyGrid(radius=1.0, resolution=8)
    corner, centre = torch.tensor([[0.95, 0.95, 0.95]]), torch.tensor([[0.05, -0.05, 0.0]])
    assert grid.occupied(corner).item() and grid.occupied(centre).item()  # all occupied before any update
    grid.update(lambda x: 100.0 * (x.norm(dim=-1, keepdim=True) < 0.5).float(), step_size=0.01)
    assert grid.occupied(centre).item() and not grid.occupied(corner).item()
    assert not grid.occupied(torch.tensor([[1.5, 0.0, 0.0]])).item()
    assert 0.05 < grid.occupied_fraction < 0.3
