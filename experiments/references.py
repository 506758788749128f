"""Published test errors (%) a table cell can be compared with, with where each comes from.

Only numbers checked against a source (../shared/PAPERS.md marks them [V]) are here. A paper's
network and schedule differ from a CPU-sized config: the number says what the method reached in
its authors' setting, not what the same config should give.
"""

# (dataset, method, total labels) -> (mean, sd or None, source)
PUBLISHED = {
  ('mnist', 'improved_gan', 20): (16.77, 4.52, 'Salimans et al. 2016, Table 1'),
  ('mnist', 'improved_gan', 100): (0.93, 0.065, 'Salimans et al. 2016, Table 1'),
  ('mnist', 'ladder', 100): (1.06, 0.37, 'Rasmus et al. 2015, Table 1'),
  ('mnist', 'vae_m2', 100): (3.33, 0.14, 'Kingma et al. 2014, Table 1 (M1+M2)'),
  ('mnist', 'vat', 100): (1.36, None, 'Miyato et al. 2018 (small model), via ssl_bad_gan README'),
  ('cifar10', 'mixmatch', 40): (47.54, 11.50, 'FixMatch paper, Table 2'),
  ('cifar10', 'mixmatch', 250): (11.05, 0.86, 'FixMatch paper, Table 2'),
  ('cifar10', 'mixmatch', 4000): (6.42, 0.10, 'FixMatch paper, Table 2'),
  ('cifar10', 'uda', 40): (29.05, 5.93, 'FixMatch paper, Table 2'),
  ('cifar10', 'uda', 250): (8.82, 1.08, 'FixMatch paper, Table 2'),
  ('cifar10', 'uda', 4000): (4.88, 0.18, 'FixMatch paper, Table 2'),
  ('cifar10', 'fixmatch', 40): (13.81, 3.37, 'FixMatch paper, Table 2 (RA)'),
  ('cifar10', 'fixmatch', 250): (5.07, 0.65, 'FixMatch paper, Table 2 (RA)'),
  ('cifar10', 'fixmatch', 4000): (4.26, 0.05, 'FixMatch paper, Table 2 (RA)'),
  ('cifar10', 'flexmatch', 40): (4.97, 0.06, 'FlexMatch paper'),
  ('cifar10', 'flexmatch', 250): (4.98, 0.09, 'FlexMatch paper'),
  ('cifar10', 'flexmatch', 4000): (4.19, 0.01, 'FlexMatch paper'),
  ('cifar10', 'mean_teacher', 4000): (15.87, 0.28, 'Oliver et al. 2018, WRN-28-2'),
  ('cifar10', 'vat', 4000): (13.13, 0.39, 'Oliver et al. 2018, WRN-28-2, VAT+EntMin'),
  ('cifar10', 'supervised', 4000): (20.26, 0.38, 'Oliver et al. 2018, WRN-28-2'),
  ('svhn_cropped', 'fixmatch', 40): (3.96, 2.17, 'FixMatch paper, Table 2 (RA)'),
  ('svhn_cropped', 'fixmatch', 250): (2.48, 0.38, 'FixMatch paper, Table 2 (RA)'),
  ('svhn_cropped', 'fixmatch', 1000): (2.28, 0.11, 'FixMatch paper, Table 2 (RA)'),
  ('cifar100', 'fixmatch', 400): (48.85, 1.75, 'FixMatch paper, Table 2 (RA)'),
  ('cifar100', 'fixmatch', 2500): (28.29, 0.11, 'FixMatch paper, Table 2 (RA)'),
  ('cifar100', 'fixmatch', 10000): (22.60, 0.12, 'FixMatch paper, Table 2 (RA)'),
}


def lookup(dataset: str, method: str, labels: int) -> dict | None:
  """{'mean', 'sd', 'source', 'text'} of the published error, or None."""
  entry = PUBLISHED.get((dataset, method, labels))
  if entry is None:
    return None
  mean, sd, source = entry
  text = f'{mean:.2f}' + ('' if sd is None else f' ± {sd:.2f}') + f' ({source})'
  return {'mean': mean, 'sd': sd, 'source': source, 'text': text}
