"""The moved table takes this app's name (a rename: rows, ids and foreign keys stay)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('segmentation', '0007_move_out_proposals_evaluations'),
        ('evaluations', '0001_initial'),
    ]

    operations = [
        migrations.AlterModelTable(
            name='engineevaluation',
            table=None,
        ),
    ]
