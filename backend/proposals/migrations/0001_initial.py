"""ProposalJob moves here from the segmentation app with its table and rows:
this only tells Django's state that the model is ours (the table is still
segmentation's until 0002 renames it); segmentation 0007 forgets it."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('segmentation', '0006_embedding_queued_at'),
        ('images', '0002_image_stack'),
        ('projects', '0002_membership_added_by'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ProposalJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('options', models.JSONField(blank=True, default=dict)),
                        ('engine_key', models.CharField(blank=True, default='', max_length=200)),
                        ('status', models.CharField(choices=[('pending', 'Pending'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='pending', max_length=10)),
                        ('total_images', models.PositiveIntegerField(default=0)),
                        ('done_images', models.PositiveIntegerField(default=0)),
                        ('created_instances', models.PositiveIntegerField(default=0)),
                        ('error', models.TextField(blank=True, default='')),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('image', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='proposal_jobs', to='images.image')),
                        ('label', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='projects.label')),
                        ('project', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='proposal_jobs', to='projects.project')),
                    ],
                    options={
                        'db_table': 'segmentation_proposaljob',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
